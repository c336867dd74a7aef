/**
 * Turns one image file into the VAE's input tensor: decode (EXIF orientation honoured), make it
 * RGB, crop, resize with lanczos3 and scale to the model's input range, plus an 8-bit PNG preview
 * of exactly the pixels the tensor holds.
 *
 * @module
 */

import sharp, { type Sharp } from "sharp";
import { decodePngFast } from "./png_fast.ts";

/** How the image is cropped before it is resized to `size`×`size`. */
export type CropMode = "center" | "none";

/** Options of {@linkcode preprocessImage}. */
export interface PreprocessOptions {
  /**
   * Side of the square output in pixels; a multiple of 8, because the SD VAE downsamples by 8.
   * @default {256}
   */
  size?: number;
  /**
   * `"center"`: the largest centered square is cut out, then resized (aspect kept).
   * `"none"`: the whole image is resized to `size`×`size`, aspect not kept, so that every tensor
   * of a dataset has one shape and the latents stack into one N×4×h×w array.
   * @default {"center"}
   */
  crop?: CropMode;
  /**
   * The model's input range: 8-bit value 0 maps to the first bound, 255 to the second.
   * @default {[-1, 1]}
   */
  inputRange?: readonly [number, number];
  /**
   * Whether to encode the PNG preview (the bytes are empty when false).
   * @default {true}
   */
  preview?: boolean;
  /**
   * Whether 8-bit RGB(A) PNGs may be decoded with libdeflate (when installed) instead of
   * libpng; the pixels are the same, only faster.
   * @default {true}
   */
  fastPng?: boolean;
  /** Name of the image in error messages; defaults to the path, or "image bytes". */
  source?: string;
}

/** One preprocessed image. */
export interface PreprocessedImage {
  /** Planar float32 pixels in `inputRange`, C order of `shape`. */
  tensor: Float32Array;
  /** Always `[1, 3, size, size]` (NCHW). */
  shape: [1, 3, number, number];
  /** 8-bit RGB PNG of the processed pixels (what the tensor holds before scaling). */
  previewPng: Uint8Array;
  /** Width and height of the decoded image after EXIF orientation, before cropping. */
  sourceWidth: number;
  sourceHeight: number;
}

/** Raised when an image cannot be decoded: corrupt, truncated or not an image. */
export class ImageDecodeError extends Error {
  override readonly name = "ImageDecodeError";
}

/** Raised when preprocessing options are invalid. */
export class PreprocessOptionsError extends Error {
  override readonly name = "PreprocessOptionsError";
}

/**
 * How many images to preprocess at once: one more than the cores, because an image's work moves
 * between the JavaScript thread, a libdeflate thread and libvips' threads, and the extra image
 * keeps every core busy meanwhile.
 */
export function preprocessConcurrency(): number {
  return navigator.hardwareConcurrency + 1;
}

/** Alpha is composited onto white: transparent backgrounds look as they do on a page. */
const ALPHA_BACKGROUND = { r: 255, g: 255, b: 255 };

/**
 * Preprocesses one image (bytes or a file path) into a `[1, 3, size, size]` float32 tensor.
 *
 * Alpha is flattened onto white; grayscale and palette images are expanded to RGB; 16-bit
 * images are reduced to 8 bits per channel. Decoding is strict: a truncated file, and any
 * decoder warning about corrupt data, throws {@linkcode ImageDecodeError} rather than yield an
 * image with grey or garbled regions. Resizing uses libvips' lanczos3 without the JPEG
 * shrink-on-load shortcut, so the result does not depend on the file format; for large
 * reductions libvips box-shrinks by an integer factor first and leaves at least 2× to lanczos3,
 * so results differ from Pillow's exact LANCZOS by about half an 8-bit step on average.
 *
 * @example
 * ```ts
 * import { encodeNpy } from "../format/npy.ts";
 * const { tensor, shape, previewPng } = await preprocessImage("00000.png", { size: 256 });
 * const npy = encodeNpy({ dtype: "<f4", shape, data: tensor });
 * ```
 */
export async function preprocessImage(
  input: Uint8Array | string,
  options: PreprocessOptions = {},
): Promise<PreprocessedImage> {
  const { size = 256, crop = "center", inputRange = [-1, 1], preview = true } = options;
  const { fastPng = true } = options;
  const source = options.source ?? (typeof input === "string" ? input : "image bytes");
  checkOptions(size, crop, inputRange);

  let rgb: Uint8Array;
  let sourceWidth: number;
  let sourceHeight: number;
  let bytes: Uint8Array;
  try {
    bytes = typeof input === "string" ? await Deno.readFile(input) : input;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ImageDecodeError(`${source}: cannot read image: ${reason}`, { cause: error });
  }
  try {
    // 8-bit RGB(A) PNGs, the bulk of image datasets, decode faster without libpng; the pixels
    // are the same, and everything else is decoded by sharp.
    const fast = fastPng ? await decodePngFast(bytes) : undefined;
    let pipeline: Sharp;
    let hasAlpha: boolean;
    if (fast !== undefined) {
      ({ width: sourceWidth, height: sourceHeight } = fast);
      const { width, height, channels } = fast;
      pipeline = sharp(fast.data, { raw: { width, height, channels } });
      hasAlpha = channels === 4;
    } else {
      const meta = await sharp(bytes).metadata();
      // autoOrient holds the dimensions after EXIF orientation; width/height are as stored.
      sourceWidth = meta.autoOrient?.width ?? meta.width;
      sourceHeight = meta.autoOrient?.height ?? meta.height;
      if (!sourceWidth || !sourceHeight) {
        throw new Error(`expected positive dimensions, found ${sourceWidth}×${sourceHeight}`);
      }
      pipeline = sharp(bytes, { failOn: "warning" });
      if ((meta.orientation ?? 1) > 1) pipeline = pipeline.rotate();
      hasAlpha = meta.hasAlpha;
    }
    // Each step is added only when it changes something: libvips then streams the image in one
    // pass instead of materialising intermediate copies.
    if (crop === "center" && sourceWidth !== sourceHeight) {
      const side = Math.min(sourceWidth, sourceHeight);
      pipeline = pipeline.extract({
        left: Math.floor((sourceWidth - side) / 2),
        top: Math.floor((sourceHeight - side) / 2),
        width: side,
        height: side,
      });
    }
    if (hasAlpha) pipeline = pipeline.flatten({ background: ALPHA_BACKGROUND });
    const { data, info } = await pipeline
      .toColourspace("srgb")
      .resize(size, size, { fit: "fill", kernel: "lanczos3", fastShrinkOnLoad: false })
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== size || info.height !== size) {
      throw new Error(
        `expected ${size}×${size}×3 pixels after resizing, found ` +
          `${info.width}×${info.height}×${info.channels}`,
      );
    }
    rgb = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ImageDecodeError(`${source}: cannot decode image: ${firstLines(reason)}`, {
      cause: error,
    });
  }

  const tensor = planarFloat(rgb, size * size, inputRange);
  const previewPng = preview
    ? new Uint8Array(
      await sharp(rgb, { raw: { width: size, height: size, channels: 3 } })
        .png({ compressionLevel: 3 })
        .toBuffer(),
    )
    : new Uint8Array(0);
  return { tensor, shape: [1, 3, size, size], previewPng, sourceWidth, sourceHeight };
}

function checkOptions(size: number, crop: string, inputRange: readonly [number, number]): void {
  if (!Number.isInteger(size) || size < 8 || size % 8 !== 0) {
    throw new PreprocessOptionsError(`size: expected a positive multiple of 8, found ${size}`);
  }
  if (crop !== "center" && crop !== "none") {
    throw new PreprocessOptionsError(`crop: expected "center" or "none", found ${String(crop)}`);
  }
  const [lo, hi] = inputRange;
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo === hi) {
    throw new PreprocessOptionsError(
      `inputRange: expected two different finite numbers, found [${lo}, ${hi}]`,
    );
  }
}

/** Interleaved 8-bit RGB → planar float32 through a 256-entry table (one multiply-add per value). */
function planarFloat(
  rgb: Uint8Array,
  pixels: number,
  [lo, hi]: readonly [number, number],
): Float32Array {
  const table = new Float32Array(256);
  for (let v = 0; v < 256; v++) table[v] = lo + (hi - lo) * (v / 255);
  const out = new Float32Array(3 * pixels);
  const g = pixels;
  const b = 2 * pixels;
  for (let i = 0, j = 0; i < pixels; i++, j += 3) {
    out[i] = table[rgb[j]];
    out[g + i] = table[rgb[j + 1]];
    out[b + i] = table[rgb[j + 2]];
  }
  return out;
}

/** libvips repeats its messages line by line; the first distinct lines carry the reason. */
function firstLines(message: string): string {
  const lines = [...new Set(message.split("\n").map((l) => l.trim()).filter((l) => l))];
  return lines.slice(0, 3).join("; ");
}

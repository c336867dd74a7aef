/**
 * Turns one image file into the VAE's input tensor: decode (EXIF orientation honoured), make it
 * RGB, crop (to a square, or to the image's aspect-ratio bucket), resize with lanczos3, flip if
 * asked, and scale to the model's input range, plus an 8-bit PNG preview of exactly the pixels
 * the tensor holds and the conditioning metadata SDXL-style models train on (original size, crop
 * offset, target size).
 *
 * @module
 */

import sharp, { type Sharp } from "sharp";
import { decodePngFast } from "./png_fast.ts";
import {
  type Bucket,
  BucketError,
  bucketForImage,
  bucketName,
  type BucketOptions,
  type CoverCrop,
  coverCrop,
  mirrorCrop,
  resolveBucketOptions,
} from "./buckets.ts";

/** How the image is cropped before it is resized. */
export type CropMode = "center" | "none" | "buckets";

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
   * `"buckets"`: the image goes to the aspect-ratio bucket nearest its own (see `buckets`), is
   * resized to cover it and center-cropped by the remainder.
   * @default {"center"}
   */
  crop?: CropMode;
  /**
   * The buckets of `crop: "buckets"`; `area` defaults to `size`².
   * @default {{ step: 64 } (see {@linkcode BucketOptions})}
   */
  buckets?: Partial<BucketOptions>;
  /**
   * Mirror the result left to right (the tensor is exactly the mirror of the unflipped one).
   * @default {false}
   */
  flip?: boolean;
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

/**
 * Where an image's pixels came from, in SDXL's conventions: sizes and offsets are (height, width)
 * and (top, left).
 */
export interface Conditioning {
  /** Size of the image after EXIF orientation. */
  original_size: [number, number];
  /** Offset of the crop in the resized image's pixels (what SDXL conditions on). */
  crop_coords_top_left: [number, number];
  /**
   * The region kept, in original pixels: top, left, bottom, right (bottom and right exclusive).
   * For a flipped image, in the flipped original's coordinates.
   */
  crop_box: [number, number, number, number];
  /** Size of the tensor: the bucket, or `size`×`size`. */
  target_size: [number, number];
}

/** One preprocessed image. */
export interface PreprocessedImage {
  /** Planar float32 pixels in `inputRange`, C order of `shape`. */
  tensor: Float32Array;
  /** `[1, 3, height, width]` (NCHW): `size`×`size`, or the bucket's size. */
  shape: [1, 3, number, number];
  /** The bucket's name, `WxH` (`"256x256"` for the square of `crop` center and none). */
  bucket: string;
  /** Original size, crop and target size. */
  conditioning: Conditioning;
  /** Whether the pixels are mirrored. */
  flipped: boolean;
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

export { BucketError };

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
 * Preprocesses one image (bytes or a file path) into a `[1, 3, height, width]` float32 tensor:
 * `size`×`size`, or with `crop: "buckets"` the size of the image's bucket. An image no bucket
 * can hold without upscaling (`buckets.noUpscale`) throws {@linkcode BucketError}.
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
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * import { encodeNpy } from "../format/npy.ts";
 * // A 480×320 image of one colour, as PNG bytes (a path to a file works the same).
 * const colour = { r: 192, g: 64, b: 128 };
 * const png = await sharp({ create: { width: 480, height: 320, channels: 3, background: colour } })
 *   .png()
 *   .toBuffer();
 * const { tensor, shape } = await preprocessImage(new Uint8Array(png), { size: 256 });
 * assert.deepEqual(shape, [1, 3, 256, 256]);
 * assert.ok(Math.abs(tensor[0] - (2 * 192 / 255 - 1)) < 1e-6); // red, in [-1, 1]
 * const npy = encodeNpy({ dtype: "<f4", shape, data: tensor });
 * assert.equal(npy.length, 128 + 4 * 3 * 256 * 256);
 * const wide = await preprocessImage(new Uint8Array(png), { crop: "buckets", flip: true });
 * assert.equal(wide.bucket, "320x192");
 * assert.deepEqual(wide.conditioning.original_size, [320, 480]); // (height, width)
 * ```
 */
export async function preprocessImage(
  input: Uint8Array | string,
  options: PreprocessOptions = {},
): Promise<PreprocessedImage> {
  const { size = 256, crop = "center", inputRange = [-1, 1], preview = true } = options;
  const { fastPng = true, flip = false } = options;
  const source = options.source ?? (typeof input === "string" ? input : "image bytes");
  checkOptions(size, crop, inputRange);
  if (crop === "buckets") {
    try {
      resolveBucketOptions({ ...options.buckets, area: options.buckets?.area ?? size * size });
    } catch (error) {
      if (error instanceof BucketError) throw new PreprocessOptionsError(error.message);
      throw error;
    }
  }

  const bytes = await readImage(input, source);
  let decoded: Decoded;
  try {
    decoded = await decodeAndResize(bytes, { size, crop, buckets: options.buckets, fastPng });
  } catch (error) {
    // An image too small for any bucket decoded fine: say so, not that it is unreadable.
    if (error instanceof BucketError) throw new BucketError(`${source}: ${error.message}`);
    const reason = error instanceof Error ? error.message : String(error);
    throw new ImageDecodeError(`${source}: cannot decode image: ${firstLines(reason)}`, {
      cause: error,
    });
  }
  const { rgb, sourceWidth, sourceHeight, placement } = decoded;
  const { width, height } = placement.bucket;
  // Mirrored after resizing, so a flipped tensor is exactly the mirror of the unflipped one.
  if (flip) mirrorRows(rgb, width, height);
  const tensor = planarFloat(rgb, width * height, inputRange);
  const previewPng = preview
    ? new Uint8Array(
      await sharp(rgb, { raw: { width, height, channels: 3 } })
        .png({ compressionLevel: 3 })
        .toBuffer(),
    )
    : new Uint8Array(0);
  const seen = flip ? mirrorCrop(placement, sourceWidth) : placement;
  const { top, left, height: keptHeight, width: keptWidth } = seen.box;
  return {
    tensor,
    shape: [1, 3, height, width],
    bucket: bucketName(placement.bucket),
    conditioning: {
      original_size: [sourceHeight, sourceWidth],
      crop_coords_top_left: seen.cropTopLeft,
      crop_box: [top, left, top + keptHeight, left + keptWidth],
      target_size: [height, width],
    },
    flipped: flip,
    previewPng,
    sourceWidth,
    sourceHeight,
  };
}

async function readImage(input: Uint8Array | string, source: string): Promise<Uint8Array> {
  try {
    return typeof input === "string" ? await Deno.readFile(input) : input;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ImageDecodeError(`${source}: cannot read image: ${reason}`, { cause: error });
  }
}

/** An image decoded, cropped and resized: 8-bit RGB pixels of its placement's bucket. */
interface Decoded {
  rgb: Uint8Array;
  sourceWidth: number;
  sourceHeight: number;
  placement: CoverCrop;
}

/**
 * Decodes the image (EXIF orientation honoured), crops it to its placement and resizes it with
 * lanczos3, alpha flattened onto white.
 */
async function decodeAndResize(
  bytes: Uint8Array,
  { size, crop, buckets, fastPng }: {
    size: number;
    crop: CropMode;
    buckets: Partial<BucketOptions> | undefined;
    fastPng: boolean;
  },
): Promise<Decoded> {
  const { pipeline: source, width: sourceWidth, height: sourceHeight, hasAlpha } = await decodeRaw(
    bytes,
    fastPng,
  );
  let pipeline = source;
  const placement = place(sourceWidth, sourceHeight, size, crop, buckets);
  const { box, bucket } = placement;
  // Each step is added only when it changes something: libvips then streams the image in one
  // pass instead of materialising intermediate copies.
  if (box.width !== sourceWidth || box.height !== sourceHeight) pipeline = pipeline.extract(box);
  if (hasAlpha) pipeline = pipeline.flatten({ background: ALPHA_BACKGROUND });
  const { data, info } = await pipeline
    .toColourspace("srgb")
    .resize(bucket.width, bucket.height, {
      fit: "fill",
      kernel: "lanczos3",
      fastShrinkOnLoad: false,
    })
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== bucket.width || info.height !== bucket.height) {
    throw new Error(
      `expected ${bucket.width}×${bucket.height}×3 pixels after resizing, found ` +
        `${info.width}×${info.height}×${info.channels}`,
    );
  }
  const rgb = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { rgb, sourceWidth, sourceHeight, placement };
}

/** The image's 8-bit sRGB pixels as a raw sharp pipeline, by the fast PNG path or by sharp. */
async function decodeRaw(
  bytes: Uint8Array,
  fastPng: boolean,
): Promise<{ pipeline: Sharp; width: number; height: number; hasAlpha: boolean }> {
  // 8-bit RGB(A) PNGs, the bulk of image datasets, decode faster without libpng; the pixels
  // are the same, and everything else is decoded by sharp.
  const fast = fastPng ? await decodePngFast(bytes) : undefined;
  if (fast !== undefined) {
    const { width, height, channels } = fast;
    const pipeline = sharp(fast.data, { raw: { width, height, channels } });
    return { pipeline, width, height, hasAlpha: channels === 4 };
  }
  // EXIF orientation is applied while decoding (a no-op without one), so the header is not
  // parsed twice: a tenth of a 500×375 JPEG's decoding time.
  const decoder = sharp(bytes, { failOn: "warning", autoOrient: true });
  // Decoded to 8-bit sRGB pixels first, exactly what the fast path hands over: libvips then
  // crops and resizes the same raw image either way, so the tensor does not depend on which
  // decoder ran (straight from a file, its resize can differ by 1/255 at some sizes). Decoding
  // the whole file is also what makes it strict: a one-pass pipeline would stop at the crop's
  // last row and miss damage below it.
  const { data, info } = await decoder.toColourspace("srgb").raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  const { width, height } = info;
  if (!width || !height) {
    throw new Error(`expected positive dimensions, found ${width}×${height}`);
  }
  const channels = info.channels as 3 | 4;
  const pipeline = sharp(data, { raw: { width, height, channels } });
  return { pipeline, width, height, hasAlpha: channels === 4 };
}

/** Which part of the image is kept and the size it is resized to. */
function place(
  width: number,
  height: number,
  size: number,
  crop: CropMode,
  buckets: Partial<BucketOptions> | undefined,
): CoverCrop {
  if (crop === "none") {
    // The whole image, squeezed: nothing cropped, so the offset is zero.
    return {
      bucket: { width: size, height: size },
      scale: Math.max(size / width, size / height),
      box: { top: 0, left: 0, height, width },
      cropTopLeft: [0, 0],
    };
  }
  const bucket: Bucket = crop === "center"
    ? { width: size, height: size }
    : bucketForImage(width, height, { ...buckets, area: buckets?.area ?? size * size });
  return coverCrop(width, height, bucket);
}

/** Reverses every row of interleaved RGB pixels in place. */
function mirrorRows(rgb: Uint8Array, width: number, height: number): void {
  for (let y = 0; y < height; y++) {
    let a = y * width * 3;
    let b = a + (width - 1) * 3;
    for (; a < b; a += 3, b -= 3) {
      for (let c = 0; c < 3; c++) {
        const t = rgb[a + c];
        rgb[a + c] = rgb[b + c];
        rgb[b + c] = t;
      }
    }
  }
}

function checkOptions(size: number, crop: string, inputRange: readonly [number, number]): void {
  if (!Number.isInteger(size) || size < 8 || size % 8 !== 0) {
    throw new PreprocessOptionsError(`size: expected a positive multiple of 8, found ${size}`);
  }
  if (crop !== "center" && crop !== "none" && crop !== "buckets") {
    throw new PreprocessOptionsError(
      `crop: expected "center", "none" or "buckets", found ${String(crop)}`,
    );
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

/**
 * Pixel-level checks of a downloaded image with sharp: its pixel size, and the MD5 of its
 * decoded pixels computed the way NVIDIA's FFHQ script does (`np.array(PIL.Image.open(f))`:
 * H×W×3 uint8 RGB, row-major).
 *
 * @module
 */

import sharp from "sharp";
import { createHash } from "node:crypto";

/** Raised when an image cannot be decoded or does not match its expected pixels. */
export class PixelError extends Error {
  override readonly name = "PixelError";
}

/** Pixel size and pixel MD5 of one image. */
export interface PixelFacts {
  width: number;
  height: number;
  /** MD5 of the decoded H×W×3 uint8 RGB buffer, row-major. */
  pixelMd5: string;
}

/**
 * Reads `[width, height]` from the image header (no full decode).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * const png = await sharp({
 *   create: { width: 4, height: 2, channels: 3, background: { r: 255, g: 0, b: 0 } },
 * }).png().toBuffer();
 * assert.deepEqual(await readPixelSize(new Uint8Array(png)), [4, 2]);
 * ```
 */
export async function readPixelSize(input: string | Uint8Array): Promise<[number, number]> {
  const name = typeof input === "string" ? input : "image bytes";
  await rejectEmpty(input, name);
  let meta;
  try {
    meta = await sharp(input).metadata();
  } catch (error) {
    throw new PixelError(`${name}: not a readable image: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!meta.width || !meta.height) throw new PixelError(`${name}: the image has no pixel size`);
  return [meta.width, meta.height];
}

/**
 * Decodes the image and returns its size and pixel MD5. Alpha is dropped and grey images are
 * expanded to RGB, so the buffer is always H×W×3.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import sharp from "sharp";
 * const png = await sharp({
 *   create: { width: 4, height: 2, channels: 3, background: { r: 255, g: 0, b: 0 } },
 * }).png().toBuffer();
 * const rgb = new Uint8Array(4 * 2 * 3).map((_, i) => i % 3 === 0 ? 255 : 0);
 * const { width, height, pixelMd5 } = await readPixelFacts(new Uint8Array(png));
 * assert.deepEqual([width, height], [4, 2]);
 * assert.equal(pixelMd5, createHash("md5").update(rgb).digest("hex"));
 * ```
 */
export async function readPixelFacts(input: string | Uint8Array): Promise<PixelFacts> {
  const name = typeof input === "string" ? input : "image bytes";
  await rejectEmpty(input, name);
  let raw;
  try {
    raw = await sharp(input).removeAlpha().toColourspace("srgb").raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new PixelError(`${name}: cannot decode the image: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const { width, height, channels } = raw.info;
  if (channels !== 3 || raw.data.length !== width * height * 3) {
    throw new PixelError(
      `${name}: expected ${width}×${height}×3 decoded bytes, found ${raw.data.length} (${channels} channels)`,
    );
  }
  return { width, height, pixelMd5: createHash("md5").update(raw.data).digest("hex") };
}

/** What {@link verifyPixels} compares against; absent fields are not checked. */
export interface ExpectedPixels {
  pixelSize?: [number, number] | null;
  pixelMd5?: string | null;
}

/**
 * Checks an image against its expected pixel size and, when `checkMd5` is true, its pixel MD5;
 * throws a {@link PixelError} naming the file with expected and found values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * const png = await sharp({
 *   create: { width: 4, height: 2, channels: 3, background: { r: 255, g: 0, b: 0 } },
 * }).png().toBuffer();
 * const bytes = new Uint8Array(png);
 * assert.deepEqual((await verifyPixels(bytes, { pixelSize: [4, 2] })).width, 4);
 * await assert.rejects(verifyPixels(bytes, { pixelSize: [1024, 1024] }), /expected 1024×1024 pixels, found 4×2/);
 * ```
 */
export async function verifyPixels(
  input: string | Uint8Array,
  expected: ExpectedPixels,
  checkMd5 = false,
): Promise<{ width: number; height: number; pixelMd5: string | null }> {
  const name = typeof input === "string" ? input : "image bytes";
  let width: number, height: number;
  let md5: string | null = null;
  if (checkMd5) {
    ({ width, height, pixelMd5: md5 } = await readPixelFacts(input));
  } else {
    [width, height] = await readPixelSize(input);
  }
  if (expected.pixelSize && (expected.pixelSize[0] !== width || expected.pixelSize[1] !== height)) {
    throw new PixelError(
      `${name}: expected ${expected.pixelSize[0]}×${
        expected.pixelSize[1]
      } pixels, found ${width}×${height}`,
    );
  }
  if (checkMd5 && expected.pixelMd5 && md5 !== expected.pixelMd5.toLowerCase()) {
    throw new PixelError(`${name}: expected pixel MD5 ${expected.pixelMd5}, found ${md5}`);
  }
  return { width, height, pixelMd5: md5 };
}

/** sharp calls an empty file an "unsupported image format"; say what it is. */
async function rejectEmpty(input: string | Uint8Array, name: string): Promise<void> {
  const size = typeof input === "string"
    ? (await Deno.stat(input).catch((error) => {
      // A missing file is for sharp to report, as it reports any unreadable input.
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }))?.size
    : input.length;
  if (size === 0) throw new PixelError(`${name}: the file is empty (0 bytes)`);
}

/**
 * Renders a planar float image tensor (a decoder output, a preprocessed input) as an 8-bit PNG.
 *
 * @module
 */

import sharp from "sharp";

/** Raised when a tensor's shape or length does not describe an RGB image. */
export class TensorImageError extends Error {
  override readonly name = "TensorImageError";
}

/**
 * Encodes a `[1, 3, H, W]` or `[3, H, W]` float tensor as an RGB PNG. Values are mapped from
 * `inputRange` to 0…255, rounded and clamped, so out-of-range decoder outputs saturate.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import sharp from "sharp";
 * const decoded = new Float32Array(3 * 64 * 48).fill(1.5); // a decoder output, over the range
 * const png = await tensorToPng(decoded, [1, 3, 64, 48]); // inputRange defaults to [-1, 1]
 * const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
 * assert.deepEqual([info.width, info.height, data[0]], [48, 64, 255]); // saturated at white
 * ```
 */
export async function tensorToPng(
  tensor: Float32Array,
  shape: readonly number[],
  inputRange: readonly [number, number] = [-1, 1],
): Promise<Uint8Array> {
  const dims = shape.length === 4 && shape[0] === 1 ? shape.slice(1) : shape;
  if (dims.length !== 3 || dims[0] !== 3 || !(dims[1] > 0) || !(dims[2] > 0)) {
    throw new TensorImageError(
      `expected shape [1, 3, H, W] or [3, H, W], found [${shape.join(", ")}]`,
    );
  }
  const [, height, width] = dims;
  const pixels = height * width;
  if (tensor.length !== 3 * pixels) {
    throw new TensorImageError(
      `shape [${shape.join(", ")}] needs ${3 * pixels} values, found ${tensor.length}`,
    );
  }
  const [lo, hi] = inputRange;
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo === hi) {
    throw new TensorImageError(
      `inputRange: expected two different finite numbers, found [${lo}, ${hi}]`,
    );
  }
  const scale = 255 / (hi - lo);
  const rgb = new Uint8ClampedArray(3 * pixels);
  for (let c = 0; c < 3; c++) {
    const plane = c * pixels;
    // Uint8ClampedArray rounds half to even and clamps; NaN becomes 0.
    for (let i = 0, j = c; i < pixels; i++, j += 3) rgb[j] = (tensor[plane + i] - lo) * scale;
  }
  const png = await sharp(new Uint8Array(rgb.buffer), { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/**
 * PNG unfiltering in plain JavaScript, written to follow the specification closely (PNG
 * section 7.3 and chapter 9): where the engine has no WebAssembly SIMD, for images too large for
 * a 32-bit WebAssembly memory, and as the reference the WebAssembly kernel is tested against.
 *
 * @module
 */

/**
 * Raised when a scanline has a filter type other than 0–4; the message names the row (0-based)
 * and the value found.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(new PngFilterError("scanline 3 has filter type 9").name, "PngFilterError");
 * ```
 */
export class PngFilterError extends Error {
  override readonly name = "PngFilterError";
}

/**
 * Unfilters into `out` rows whose arguments were checked (see `png_unfilter.ts`): `filtered`
 * holds `height` rows, each a filter-type byte and `stride` bytes; `bpp` bytes per pixel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const out = new Uint8Array(6);
 * unfilterJs(new Uint8Array([1, 10, 20, 30, 1, 2, 3]), 1, 6, 3, out);
 * assert.deepEqual([...out], [10, 20, 30, 11, 22, 33]);
 * ```
 */
export function unfilterJs(
  filtered: Uint8Array,
  height: number,
  stride: number,
  bpp: number,
  out: Uint8Array,
) {
  const zeroRow = new Uint8Array(stride); // the prior row of the first row
  const first = Math.min(bpp, stride); // bytes with no pixel to their left
  for (let row = 0; row < height; row++) {
    const at = row * (stride + 1);
    const type = filtered[at];
    const x = filtered.subarray(at + 1, at + 1 + stride);
    const line = out.subarray(row * stride, (row + 1) * stride);
    const prior = row === 0 ? zeroRow : out.subarray((row - 1) * stride, row * stride);
    // Writes through a Uint8Array wrap modulo 256, as the specification's additions do.
    switch (type) {
      case 0:
        line.set(x);
        break;
      case 1:
        for (let i = 0; i < first; i++) line[i] = x[i];
        for (let i = first; i < stride; i++) line[i] = x[i] + line[i - bpp];
        break;
      case 2:
        for (let i = 0; i < stride; i++) line[i] = x[i] + prior[i];
        break;
      case 3:
        for (let i = 0; i < first; i++) line[i] = x[i] + (prior[i] >> 1);
        for (let i = first; i < stride; i++) line[i] = x[i] + ((line[i - bpp] + prior[i]) >> 1);
        break;
      case 4:
        for (let i = 0; i < first; i++) line[i] = x[i] + prior[i];
        for (let i = first; i < stride; i++) {
          // The specification's predictor, with p = a + b - c substituted as libpng does.
          const a = line[i - bpp];
          const b = prior[i];
          const c = prior[i - bpp];
          const pa = Math.abs(b - c); // |p - a|
          const pb = Math.abs(a - c); // |p - b|
          const pc = Math.abs(a + b - c - c); // |p - c|
          line[i] = x[i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
        }
        break;
      default:
        throw new PngFilterError(`scanline ${row} has filter type ${type}; PNG defines 0 to 4`);
    }
  }
}

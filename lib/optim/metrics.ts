/**
 * Image quality of a reconstruction against its original, both float32 NCHW images of one
 * image (`[C, H, W]` or `[1, C, H, W]`) in [-1, 1]: PSNR with peak-to-peak 2, and SSIM.
 *
 * @module
 */

/** Options shared by {@link psnr} and {@link ssim}. */
export interface MetricOptions {
  /** Peak-to-peak range of pixel values (L). Default: `2`, for images in [-1, 1]. */
  dataRange?: number;
}

/** Raised when two images cannot be compared; the message says expected versus found. */
export class MetricError extends Error {
  override readonly name = "MetricError";
}

function checkPair(a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length) {
    throw new MetricError(
      `expected two images of one size, found ${a.length} and ${b.length} values`,
    );
  }
  if (a.length === 0) throw new MetricError("expected images with pixels, found empty arrays");
}

/**
 * Peak signal-to-noise ratio in dB: `10 · log10(L² / MSE)`, over every value of both images;
 * with the default L = 2 that is `10 · log10(4 / MSE)`. Identical images give `Infinity`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const db = psnr(new Float32Array([0, 0]), new Float32Array([0.5, -0.5]));
 * assert.equal(db, 10 * Math.log10(4 / 0.25)); // ≈ 12.04 dB
 * ```
 */
export function psnr(
  a: Float32Array,
  b: Float32Array,
  { dataRange = 2 }: MetricOptions = {},
): number {
  checkPair(a, b);
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    sum += d * d;
  }
  const mse = sum / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((dataRange * dataRange) / mse);
}

/** Options of {@link ssim}. */
export interface SsimOptions extends MetricOptions {
  /** Side of the Gaussian window. Default: `11`. */
  windowSize?: number;
  /** Standard deviation of the Gaussian window. Default: `1.5`. */
  sigma?: number;
  /** Default: `0.01`. */
  k1?: number;
  /** Default: `0.03`. */
  k2?: number;
}

function gaussian(size: number, sigma: number): Float64Array {
  const w = new Float64Array(size);
  const center = (size - 1) / 2;
  let total = 0;
  for (let i = 0; i < size; i++) {
    w[i] = Math.exp(-((i - center) ** 2) / (2 * sigma * sigma));
    total += w[i];
  }
  for (let i = 0; i < size; i++) w[i] /= total;
  return w;
}

function imageShape(shape: number[]): [number, number, number] {
  const dims = shape.length === 4 && shape[0] === 1 ? shape.slice(1) : shape;
  if (dims.length !== 3 || !dims.every((d) => Number.isInteger(d) && d > 0)) {
    throw new MetricError(
      `expected an image shape [C, H, W] or [1, C, H, W], found [${shape.join(", ")}]`,
    );
  }
  return dims as [number, number, number];
}

/**
 * Structural similarity (Wang et al., 2004): an 11×11 Gaussian window with σ = 1.5, K1 = 0.01,
 * K2 = 0.03 and L = 2, population (not sample) covariances, computed per channel over the
 * valid region (windows wholly inside the image: (H−10)×(W−10) positions) and averaged over
 * positions and channels. This equals scikit-image's
 * `structural_similarity(a, b, channel_axis=0, data_range=2, gaussian_weights=True, sigma=1.5,
 * use_sample_covariance=False)`, which also averages only over positions whose window lies
 * inside the image. Identical images give exactly 1.
 *
 * The Gaussian filter is separable: a horizontal then a vertical pass of 11 taps.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const image = Float32Array.from({ length: 3 * 16 * 16 }, (_, i) => Math.sin(i) * 0.8);
 * assert.equal(ssim(image, image, [3, 16, 16]), 1);
 * const darker = image.map((v) => v * 0.5);
 * assert.ok(ssim(image, darker, [3, 16, 16]) < 1);
 * ```
 */
export function ssim(
  a: Float32Array,
  b: Float32Array,
  shape: number[],
  options: SsimOptions = {},
): number {
  const { dataRange = 2, windowSize = 11, sigma = 1.5, k1 = 0.01, k2 = 0.03 } = options;
  checkPair(a, b);
  const [channels, height, width] = imageShape(shape);
  if (channels * height * width !== a.length) {
    throw new MetricError(
      `shape [${shape.join(", ")}] needs ${channels * height * width} values, found ${a.length}`,
    );
  }
  if (!Number.isInteger(windowSize) || windowSize < 1 || windowSize % 2 === 0) {
    throw new MetricError(`windowSize: expected an odd positive integer, found ${windowSize}`);
  }
  if (height < windowSize || width < windowSize) {
    throw new MetricError(
      `expected an image of at least ${windowSize}×${windowSize} for the window, found ${height}×${width}`,
    );
  }
  const window = { w: gaussian(windowSize, sigma), height, width };
  const constants = { c1: (k1 * dataRange) ** 2, c2: (k2 * dataRange) ** 2 };
  const rows = new WindowSums(height * (width - windowSize + 1));
  let total = 0;
  for (let c = 0; c < channels; c++) {
    horizontalPass(a, b, c * height * width, window, rows);
    total += meanSsim(rows, window, constants);
  }
  return total / channels;
}

/** Gaussian-weighted sums of x, y, x², y², xy at each position of a pass. */
class WindowSums {
  readonly x: Float64Array;
  readonly y: Float64Array;
  readonly xx: Float64Array;
  readonly yy: Float64Array;
  readonly xy: Float64Array;
  constructor(size: number) {
    this.x = new Float64Array(size);
    this.y = new Float64Array(size);
    this.xx = new Float64Array(size);
    this.yy = new Float64Array(size);
    this.xy = new Float64Array(size);
  }
}

interface Window {
  w: Float64Array;
  height: number;
  width: number;
}

/** The horizontal pass over one channel (starting at `base`): window sums along each row. */
function horizontalPass(
  a: Float32Array,
  b: Float32Array,
  base: number,
  { w, height, width }: Window,
  out: WindowSums,
): void {
  const outW = width - w.length + 1;
  for (let r = 0; r < height; r++) {
    const row = base + r * width;
    const outRow = r * outW;
    for (let j = 0; j < outW; j++) {
      let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
      for (let t = 0; t < w.length; t++) {
        const x = a[row + j + t];
        const y = b[row + j + t];
        const wt = w[t];
        const wx = wt * x;
        const wy = wt * y;
        sx += wx;
        sy += wy;
        sxx += wx * x;
        syy += wy * y;
        sxy += wx * y;
      }
      const o = outRow + j;
      out.x[o] = sx;
      out.y[o] = sy;
      out.xx[o] = sxx;
      out.yy[o] = syy;
      out.xy[o] = sxy;
    }
  }
}

/** The vertical pass over the row sums, and the mean SSIM over the valid positions. */
function meanSsim(
  rows: WindowSums,
  { w, height, width }: Window,
  { c1, c2 }: { c1: number; c2: number },
): number {
  const outW = width - w.length + 1;
  const outH = height - w.length + 1;
  // One output row, accumulated tap by tap for sequential reads.
  const acc = new WindowSums(outW);
  let sum = 0;
  for (let r = 0; r < outH; r++) {
    for (const part of [acc.x, acc.y, acc.xx, acc.yy, acc.xy]) part.fill(0);
    for (let t = 0; t < w.length; t++) {
      const wt = w[t];
      const s0 = (r + t) * outW;
      for (let j = 0; j < outW; j++) {
        const o = s0 + j;
        acc.x[j] += wt * rows.x[o];
        acc.y[j] += wt * rows.y[o];
        acc.xx[j] += wt * rows.xx[o];
        acc.yy[j] += wt * rows.yy[o];
        acc.xy[j] += wt * rows.xy[o];
      }
    }
    for (let j = 0; j < outW; j++) {
      const mx = acc.x[j];
      const my = acc.y[j];
      const vx = acc.xx[j] - mx * mx;
      const vy = acc.yy[j] - my * my;
      const cov = acc.xy[j] - mx * my;
      sum += ((2 * mx * my + c1) * (2 * cov + c2)) /
        ((mx * mx + my * my + c1) * (vx + vy + c2));
    }
  }
  return sum / (outH * outW);
}

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
 * psnr(new Float32Array([0, 0]), new Float32Array([0.1, -0.1])); // 10·log10(4/0.01) ≈ 26.02
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
 * // Two [3, 256, 256] images with values in [-1, 1].
 * declare const original: Float32Array, reconstruction: Float32Array;
 * const score = ssim(original, reconstruction, [3, 256, 256]);
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
  const w = gaussian(windowSize, sigma);
  const c1 = (k1 * dataRange) ** 2;
  const c2 = (k2 * dataRange) ** 2;
  const outW = width - windowSize + 1;
  const outH = height - windowSize + 1;
  const plane = height * outW;
  // Horizontal pass results: means of x, y, x², y², xy along each row.
  const hx = new Float64Array(plane);
  const hy = new Float64Array(plane);
  const hxx = new Float64Array(plane);
  const hyy = new Float64Array(plane);
  const hxy = new Float64Array(plane);
  // Vertical pass results for one output row, accumulated tap by tap for sequential reads.
  const ax = new Float64Array(outW);
  const ay = new Float64Array(outW);
  const axx = new Float64Array(outW);
  const ayy = new Float64Array(outW);
  const axy = new Float64Array(outW);
  let total = 0;
  for (let c = 0; c < channels; c++) {
    const base = c * height * width;
    for (let r = 0; r < height; r++) {
      const row = base + r * width;
      const outRow = r * outW;
      for (let j = 0; j < outW; j++) {
        let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
        for (let t = 0; t < windowSize; t++) {
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
        hx[o] = sx;
        hy[o] = sy;
        hxx[o] = sxx;
        hyy[o] = syy;
        hxy[o] = sxy;
      }
    }
    let sum = 0;
    for (let r = 0; r < outH; r++) {
      ax.fill(0);
      ay.fill(0);
      axx.fill(0);
      ayy.fill(0);
      axy.fill(0);
      for (let t = 0; t < windowSize; t++) {
        const wt = w[t];
        const s0 = (r + t) * outW;
        for (let j = 0; j < outW; j++) {
          const o = s0 + j;
          ax[j] += wt * hx[o];
          ay[j] += wt * hy[o];
          axx[j] += wt * hxx[o];
          ayy[j] += wt * hyy[o];
          axy[j] += wt * hxy[o];
        }
      }
      for (let j = 0; j < outW; j++) {
        const mx = ax[j];
        const my = ay[j];
        const vx = axx[j] - mx * mx;
        const vy = ayy[j] - my * my;
        const cov = axy[j] - mx * my;
        sum += ((2 * mx * my + c1) * (2 * cov + c2)) /
          ((mx * mx + my * my + c1) * (vx + vy + c2));
      }
    }
    total += sum / (outH * outW);
  }
  return total / channels;
}

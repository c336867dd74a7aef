/**
 * Summary statistics the report draws: quantiles, nice axis ticks, and loss curves of many
 * images aggregated into per-step quantile bands.
 *
 * @module
 */

/**
 * The `q`-quantile (0…1) of ascending-sorted values, linearly interpolated (NumPy's default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
 * ```
 */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Smallest and largest value, without spreading (large arrays overflow argument limits). */
export function extent(values: Iterable<number>): [min: number, max: number] {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

/** The median of values in any order; NaN when empty. */
export function median(values: Iterable<number> | ArrayLike<number>): number {
  return quantile(Array.from(values).sort((a, b) => a - b), 0.5);
}

/**
 * About `count` evenly spaced round numbers (steps of 1, 2 or 5 × 10^k) covering [min, max].
 * With `integer`, steps are whole numbers (for counts, steps, anything that is never a fraction).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(niceTicks(0.3, 9.2, 5), [0, 2, 4, 6, 8, 10]);
 * assert.deepEqual(niceTicks(0, 3, 5, { integer: true }), [0, 1, 2, 3]);
 * ```
 */
export function niceTicks(
  min: number,
  max: number,
  count = 5,
  { integer = false }: { integer?: boolean } = {},
): number[] {
  if (!(max > min)) {
    const pad = integer ? 1 : min === 0 ? 1 : Math.abs(min) * 0.1;
    return niceTicks(integer ? min : min - pad, max + pad, count, { integer });
  }
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  // The tolerance keeps a step of exactly 0.05 from losing to a raw 0.05000000000000001.
  const round = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * (1 - 1e-9)) ??
    10 * power;
  const step = integer ? Math.max(1, Math.round(round)) : round;
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const ticks: number[] = [];
  // Multiplying an integer by the step (rather than adding steps) keeps 0.1 + 0.2 drift out.
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/** One image's loss at recorded optimization steps, ascending by step. */
export type LossCurve = ReadonlyArray<readonly [step: number, loss: number]>;

/** Quantile bands of many loss curves on a common grid of steps. */
export interface LossBands {
  steps: number[];
  /** Per grid step: 10 %, 25 %, 50 %, 75 % and 90 % quantiles across images. */
  q10: number[];
  q25: number[];
  q50: number[];
  q75: number[];
  q90: number[];
  /** How many images contribute at each grid step. */
  count: number[];
}

/**
 * Aggregates loss curves on up to `points` grid steps. An image contributes from its first
 * recorded step on; between recorded steps, and after it stopped, its latest loss holds — a
 * stopped image keeps its final latent, so its loss stays where it ended.
 */
export function lossBands(curves: readonly LossCurve[], points = 160): LossBands {
  const valid = curves.filter((c) => c.length > 0);
  const empty = { steps: [], q10: [], q25: [], q50: [], q75: [], q90: [], count: [] };
  if (valid.length === 0) return empty;
  const [first] = extent(valid.map((c) => c[0][0]));
  const [, last] = extent(valid.map((c) => c[c.length - 1][0]));
  const n = last > first ? Math.min(points, last - first + 1) : 1;
  const steps = Array.from(
    { length: n },
    (_, i) => n === 1 ? first : Math.round(first + ((last - first) * i) / (n - 1)),
  );
  const columns: number[][] = steps.map(() => []);
  for (const curve of valid) {
    let k = 0;
    for (let g = 0; g < steps.length; g++) {
      while (k + 1 < curve.length && curve[k + 1][0] <= steps[g]) k++;
      if (curve[k][0] <= steps[g] && Number.isFinite(curve[k][1])) columns[g].push(curve[k][1]);
    }
  }
  const out: LossBands = { ...empty, steps: [] };
  for (let g = 0; g < steps.length; g++) {
    const col = columns[g].sort((a, b) => a - b);
    if (col.length === 0) continue;
    out.steps.push(steps[g]);
    out.q10.push(quantile(col, 0.1));
    out.q25.push(quantile(col, 0.25));
    out.q50.push(quantile(col, 0.5));
    out.q75.push(quantile(col, 0.75));
    out.q90.push(quantile(col, 0.9));
    out.count.push(col.length);
  }
  return out;
}

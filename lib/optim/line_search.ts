/**
 * The strong-Wolfe line search (Nocedal & Wright, *Numerical Optimization*, 2nd ed., Algorithms
 * 3.5 and 3.6): a bracketing phase that grows the step by cubic extrapolation until an interval
 * holds an acceptable step, then a zoom phase that shrinks it by cubic interpolation until a step
 * meets both conditions
 *
 * ```
 * f(t) ≤ f(0) + c1·t·f′(0)        (sufficient decrease)
 * |f′(t)| ≤ −c2·f′(0)              (curvature)
 * ```
 *
 * with f′ the slope along the direction. The details (safeguards, when a bracket is too small,
 * the step returned when the budget runs out) follow `torch.optim.LBFGS`'s `_strong_wolfe`,
 * itself a port of minFunc's, so the two take the same steps on the same values.
 *
 * The search is a generator: it yields each step length to evaluate and is resumed with the loss,
 * gradient and slope there, so an image can sit in the middle of its line search while the batch
 * evaluates other images' points. Its state is the values it was sent: replaying them rebuilds it.
 *
 * @module
 */

/** The constants of the search; the defaults are torch.optim.LBFGS's. */
export interface LineSearchOptions {
  /** Sufficient-decrease constant. Default: `1e-4`. */
  c1?: number;
  /** Curvature constant. Default: `0.9`. */
  c2?: number;
  /** A bracket narrower than this (times max |d|) ends the search. Default: `1e-9`. */
  toleranceChange?: number;
  /** Evaluations after the first (torch's `max_ls`). Default: `25`. */
  maxIterations?: number;
}

/** The values at one step length: loss, gradient and slope `gᵀd`. */
export interface LineSearchPoint {
  f: number;
  g: Float32Array;
  gtd: number;
}

/** Where the search starts: the values at `t = 0`, the first step tried and max |d|. */
export interface LineSearchStart extends LineSearchPoint {
  /** The first step length tried. */
  t: number;
  /** The largest |dᵢ| of the direction. */
  dNorm: number;
}

/** The step the search settled on, with the values there, and how many evaluations it took. */
export interface LineSearchResult extends LineSearchPoint {
  t: number;
  evaluations: number;
}

interface Sample extends LineSearchPoint {
  t: number;
}

type Settled = Required<LineSearchOptions>;

/**
 * The minimizer of the cubic through two points with their values `f` and slopes `g`, clamped to
 * `bounds` (default: between the two points); the middle of the bounds when the cubic has no
 * minimizer. Where the formula breaks down (two equal points), it also takes the middle.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * // f(t) = (t − 1)² sampled at 0 and 3: the cubic is the parabola itself.
 * assert.equal(cubicInterpolate(0, 1, -2, 3, 4, 4), 1);
 * ```
 */
export function cubicInterpolate(
  x1: number,
  f1: number,
  g1: number,
  x2: number,
  f2: number,
  g2: number,
  bounds?: [number, number],
): number {
  const [lo, hi] = bounds ?? (x1 <= x2 ? [x1, x2] : [x2, x1]);
  const d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
  const d2Square = d1 * d1 - g1 * g2;
  if (!(d2Square >= 0)) return (lo + hi) / 2;
  const d2 = Math.sqrt(d2Square);
  const at = x1 <= x2
    ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
  return Number.isNaN(at) ? (lo + hi) / 2 : Math.min(Math.max(at, lo), hi);
}

/**
 * Searches along a direction for a step meeting the strong Wolfe conditions. Call `next()` once to
 * get the first step length, then `next(values)` with the values at each step it yields; the
 * final result comes back as the generator's return value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * // f(x) = (x − 3)², from x = 0 along d = 1, first trying t = 10: too far (f rose), so the
 * // bracket [0, 10] is zoomed into, and its cubic lands on the minimizer.
 * const at = (t: number) => ({ f: (t - 3) ** 2, g: new Float32Array([2 * (t - 3)]), gtd: 2 * (t - 3) });
 * const search = strongWolfe({ ...at(0), t: 10, dNorm: 1 });
 * let step = search.next();
 * while (!step.done) step = search.next(at(step.value));
 * assert.equal(step.value.t, 3);
 * assert.equal(step.value.evaluations, 2);
 * ```
 */
export function* strongWolfe(
  start: LineSearchStart,
  options: LineSearchOptions = {},
): Generator<number, LineSearchResult, LineSearchPoint> {
  const settled: Settled = {
    c1: options.c1 ?? 1e-4,
    c2: options.c2 ?? 0.9,
    toleranceChange: options.toleranceChange ?? 1e-9,
    maxIterations: options.maxIterations ?? 25,
  };
  const count = { iterations: 0 };
  const { bracket, done } = yield* bracketPhase(start, settled, count);
  const best = yield* zoomPhase(start, bracket, done, settled, count);
  return { t: best.t, f: best.f, g: best.g, gtd: best.gtd, evaluations: count.iterations + 1 };
}

/** Grows the step until an interval brackets an acceptable one, or a step is acceptable. */
function* bracketPhase(
  start: LineSearchStart,
  o: Settled,
  count: { iterations: number },
): Generator<number, { bracket: Sample[]; done: boolean }, LineSearchPoint> {
  let next: Sample = { ...(yield start.t), t: start.t };
  let prev: Sample = { t: 0, f: start.f, g: start.g, gtd: start.gtd };
  let found: { bracket: Sample[]; done: boolean } | null = null;
  while (count.iterations < o.maxIterations) {
    const armijo = next.f > start.f + o.c1 * next.t * start.gtd;
    if (armijo || (count.iterations > 1 && next.f >= prev.f)) {
      found = { bracket: [prev, next], done: false };
      break;
    }
    if (Math.abs(next.gtd) <= -o.c2 * start.gtd) {
      found = { bracket: [next], done: true };
      break;
    }
    if (next.gtd >= 0) {
      found = { bracket: [prev, next], done: false };
      break;
    }
    const bounds: [number, number] = [next.t + 0.01 * (next.t - prev.t), next.t * 10];
    const t = cubicInterpolate(prev.t, prev.f, prev.gtd, next.t, next.f, next.gtd, bounds);
    prev = next;
    next = { ...(yield t), t };
    count.iterations++;
  }
  if (count.iterations === o.maxIterations) {
    // Out of evaluations: the choice is between where it started and the last step tried.
    const origin = { t: 0, f: start.f, g: start.g, gtd: start.gtd };
    return { bracket: [origin, next], done: found?.done ?? false };
  }
  return found!;
}

/** Shrinks the bracket until a step meets both conditions; returns its lowest end. */
function* zoomPhase(
  start: LineSearchStart,
  bracket: Sample[],
  done: boolean,
  o: Settled,
  count: { iterations: number },
): Generator<number, Sample, LineSearchPoint> {
  const b = bracket;
  const order = () => b[0].f <= b[b.length - 1].f ? [0, b.length - 1] : [b.length - 1, 0];
  let [low, high] = order();
  let insufficient = false;
  while (!done && count.iterations < o.maxIterations) {
    if (Math.abs(b[1].t - b[0].t) * start.dNorm < o.toleranceChange) break;
    let t = cubicInterpolate(b[0].t, b[0].f, b[0].gtd, b[1].t, b[1].f, b[1].gtd);
    const lo = Math.min(b[0].t, b[1].t);
    const hi = Math.max(b[0].t, b[1].t);
    const eps = 0.1 * (hi - lo);
    // A step too near an end makes little progress: move it a tenth of the bracket inside.
    if (Math.min(hi - t, t - lo) < eps) {
      if (insufficient || t >= hi || t <= lo) {
        t = Math.abs(t - hi) < Math.abs(t - lo) ? hi - eps : lo + eps;
        insufficient = false;
      } else {
        insufficient = true;
      }
    } else {
      insufficient = false;
    }
    const p: Sample = { ...(yield t), t };
    count.iterations++;
    if (p.f > start.f + o.c1 * t * start.gtd || p.f >= b[low].f) {
      b[high] = p;
      [low, high] = order();
    } else {
      if (Math.abs(p.gtd) <= -o.c2 * start.gtd) done = true;
      else if (p.gtd * (b[high].t - b[low].t) >= 0) b[high] = b[low];
      b[low] = p;
    }
  }
  return b[low];
}

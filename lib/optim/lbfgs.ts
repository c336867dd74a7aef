/**
 * The limited memory of L-BFGS (Nocedal & Wright, *Numerical Optimization*, 2nd ed., §7.2): the
 * last `history` pairs of steps `s = x₊ − x` and gradient changes `y = g₊ − g`, and the two-loop
 * recursion that turns them into a search direction `d = −H·g` without forming `H`.
 *
 * As in `torch.optim.LBFGS`: a pair is kept only when `yᵀs > 1e-10` (otherwise the curvature
 * information would make `H` indefinite), the initial Hessian is `γ·I` with `γ = yᵀs / yᵀy` of the
 * newest kept pair (1 before any), and vectors are stored as float32. Dot products and the
 * recursion's accumulator are float64, in a fixed order, so a restored memory gives the same
 * directions bit for bit.
 *
 * @module
 */
import { CheckpointError, type CheckpointParts, checkpointReader } from "./checkpoint.ts";

/** Smallest `yᵀs` of a pair the memory keeps (torch.optim.LBFGS's constant). */
const CURVATURE_MIN = 1e-10;

/** Raised when vectors given to the memory do not have its length. */
export class LbfgsShapeError extends Error {
  override readonly name = "LbfgsShapeError";
}

/**
 * `aᵀb` in float64, element by element in order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(dot(new Float32Array([1, 2]), new Float32Array([3, 4])), 11);
 * ```
 */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

/**
 * The pairs of one image's L-BFGS.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * // f(x) = x₀² + 10·x₁²: one pair along each axis gives the exact inverse Hessian there.
 * const memory = new LbfgsMemory(2, 10);
 * memory.push(new Float32Array([1, 0]), new Float32Array([2, 0]));
 * memory.push(new Float32Array([0, 1]), new Float32Array([0, 20]));
 * const d = new Float32Array(2);
 * memory.direction(new Float32Array([2, 20]), d); // the gradient at (1, 1)
 * assert.deepEqual(Array.from(d), [-1, -1]);
 * ```
 */
export class LbfgsMemory {
  readonly #size: number;
  readonly #history: number;
  #s: Float32Array[] = [];
  #y: Float32Array[] = [];
  #rho: number[] = [];
  #gamma = 1;

  /** An empty memory of vectors of `size` values, keeping at most `history` pairs. */
  constructor(size: number, history: number) {
    if (!Number.isInteger(history) || history < 1) {
      throw new LbfgsShapeError(`history: expected a positive integer, found ${history}`);
    }
    this.#size = size;
    this.#history = history;
  }

  /** Pairs kept. */
  get length(): number {
    return this.#s.length;
  }

  /** Adds the pair (s, y) unless `yᵀs ≤ 1e-10`, dropping the oldest when full; says whether kept. */
  push(s: Float32Array, y: Float32Array): boolean {
    if (s.length !== this.#size || y.length !== this.#size) {
      throw new LbfgsShapeError(
        `expected s and y of ${this.#size} values, found ${s.length} and ${y.length}`,
      );
    }
    const ys = dot(y, s);
    if (!(ys > CURVATURE_MIN)) return false;
    if (this.#s.length === this.#history) {
      this.#s.shift();
      this.#y.shift();
      this.#rho.shift();
    }
    this.#s.push(s);
    this.#y.push(y);
    this.#rho.push(1 / ys);
    this.#gamma = ys / dot(y, y);
    return true;
  }

  /** Writes the search direction `−H·g` (two-loop recursion) into `out`. */
  direction(g: Float32Array, out: Float32Array): void {
    const n = this.#size;
    if (g.length !== n || out.length !== n) {
      throw new LbfgsShapeError(
        `expected g and out of ${n} values, found ${g.length} and ${out.length}`,
      );
    }
    const k = this.#s.length;
    const alpha = new Float64Array(k);
    const q = Float64Array.from(g, (v) => -v);
    for (let i = k - 1; i >= 0; i--) {
      alpha[i] = dot(this.#s[i], q) * this.#rho[i];
      const y = this.#y[i];
      for (let j = 0; j < n; j++) q[j] -= alpha[i] * y[j];
    }
    for (let j = 0; j < n; j++) q[j] *= this.#gamma;
    for (let i = 0; i < k; i++) {
      const beta = dot(this.#y[i], q) * this.#rho[i];
      const s = this.#s[i];
      for (let j = 0; j < n; j++) q[j] += (alpha[i] - beta) * s[j];
    }
    out.set(q);
  }

  /** The pairs as checkpoint parts (`s` and `y` packed pair after pair, oldest first). */
  save(): Pick<CheckpointParts, "numbers" | "arrays"> {
    const pack = (vectors: Float32Array[]) => {
      const out = new Float32Array(vectors.length * this.#size);
      vectors.forEach((v, i) => out.set(v, i * this.#size));
      return out;
    };
    return {
      numbers: { pairs: this.#s.length, gamma: this.#gamma },
      arrays: { s: pack(this.#s), y: pack(this.#y), rho: Float64Array.from(this.#rho) },
    };
  }

  /** The memory `save` wrote; `source` names the checkpoint in errors. */
  static restore(
    parts: CheckpointParts,
    size: number,
    history: number,
    source: string,
  ): LbfgsMemory {
    const read = checkpointReader(parts, source);
    const memory = new LbfgsMemory(size, history);
    const pairs = read.number("pairs");
    if (!Number.isInteger(pairs) || pairs < 0 || pairs > history) {
      throw new CheckpointError(
        `${source}: expected at most ${history} L-BFGS pairs, found ${pairs}`,
      );
    }
    const s = read.float32("s", pairs * size);
    const y = read.float32("y", pairs * size);
    memory.#rho = Array.from(read.float64("rho", pairs));
    for (let i = 0; i < pairs; i++) {
      memory.#s.push(s.slice(i * size, (i + 1) * size));
      memory.#y.push(y.slice(i * size, (i + 1) * size));
    }
    memory.#gamma = read.number("gamma");
    return memory;
  }
}

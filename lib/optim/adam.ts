/**
 * Adam (Kingma & Ba, 2015) over float32 parameters, one state per image, so an image can leave a
 * batch (converged) and another take its slot without disturbing the rest. The update follows
 * PyTorch's `torch.optim.Adam` (bias-corrected moments, ε added to the corrected √v):
 *
 * ```
 * t ← t + 1;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 * p ← p − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)
 * ```
 *
 * Arithmetic is done in float64 and stored as float32, in a fixed order, so a run resumed from a
 * checkpoint takes the same steps, bit for bit, as one never interrupted.
 *
 * @module
 */

/** Adam's constants. */
export interface AdamOptions {
  /** Decay of the first moment. Default: `0.9`. */
  beta1?: number;
  /** Decay of the second moment. Default: `0.999`. */
  beta2?: number;
  /** Added to the bias-corrected √v. Default: `1e-8`. */
  epsilon?: number;
}

/** One image's optimizer state: its moments and how many updates it has had. */
export interface AdamState {
  /** First moment (running mean of gradients). */
  m: Float32Array;
  /** Second moment (running mean of squared gradients). */
  v: Float32Array;
  /** Updates applied so far (t in the formula above). */
  step: number;
}

/** Raised when a gradient holds NaN or ±Infinity; `step` is the update it would have been. */
export class NonFiniteGradientError extends Error {
  override readonly name = "NonFiniteGradientError";
  constructor(readonly step: number, readonly index: number, readonly value: number) {
    super(`gradient at step ${step} holds ${value} at element ${index}; expected finite values`);
  }
}

/** Raised when parameters, gradient and state do not have the same length. */
export class AdamShapeError extends Error {
  override readonly name = "AdamShapeError";
}

/**
 * A fresh state for `size` parameters: zero moments, step 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const state = createAdamState(4 * 32 * 32);
 * assert.equal(state.step, 0);
 * assert.equal(state.m.length, 4096);
 * ```
 */
export function createAdamState(size: number): AdamState {
  return { m: new Float32Array(size), v: new Float32Array(size), step: 0 };
}

/**
 * Applies one Adam update to `params` in place, with learning rate `lr`, and advances `state`.
 * For a batch, call it once per image with `subarray` views of the batched tensors. A gradient
 * holding NaN or ±Infinity throws {@link NonFiniteGradientError} before anything is changed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const latent = new Float32Array([1, 2]);
 * const state = createAdamState(latent.length);
 * adamUpdate(latent, new Float32Array([0.5, -1]), state, 0.1);
 * // The first update moves each value by lr against the sign of its gradient.
 * assert.deepEqual(Array.from(latent), [Math.fround(0.9), Math.fround(2.1)]);
 * ```
 */
export function adamUpdate(
  params: Float32Array,
  grad: Float32Array,
  state: AdamState,
  lr: number,
  { beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8 }: AdamOptions = {},
): void {
  const n = params.length;
  if (grad.length !== n || state.m.length !== n || state.v.length !== n) {
    throw new AdamShapeError(
      `expected parameters, gradient and moments of one length, found ${n}, ${grad.length}, ` +
        `${state.m.length}, ${state.v.length}`,
    );
  }
  const step = state.step + 1;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(grad[i])) throw new NonFiniteGradientError(step, i, grad[i]);
  }
  const { m, v } = state;
  const correction1 = 1 - Math.pow(beta1, step);
  const correction2 = 1 - Math.pow(beta2, step);
  const b1 = 1 - beta1;
  const b2 = 1 - beta2;
  for (let i = 0; i < n; i++) {
    const g = grad[i];
    // The update reads the moments as stored (float32), as a run resumed from them would.
    m[i] = beta1 * m[i] + b1 * g;
    v[i] = beta2 * v[i] + b2 * g * g;
    params[i] -= lr * (m[i] / correction1) / (Math.sqrt(v[i] / correction2) + epsilon);
  }
  state.step = step;
}

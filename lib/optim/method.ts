/**
 * What the optimization loop asks of a method (Adam, L-BFGS): the latent it wants evaluated
 * next, what it makes of that evaluation, and its state as checkpoint parts. One image, one
 * method state; the loop evaluates one point per image per pass and never looks inside.
 *
 * A method's life: `point` is evaluated; `observe` takes the loss and gradient there and says
 * whether that completed a step (its loss feeds the stopping rule) and whether the method itself
 * is done; if the loop goes on, `advance` moves to the next point (and may find there is none).
 *
 * @module
 */
import type { CheckpointParts } from "./checkpoint.ts";
import type { StopReason } from "./stopping.ts";

/** What a method made of one evaluation. */
export interface Observation {
  /** The loss of the point a step just reached (the stopping rule's history), or `null`. */
  stepLoss: number | null;
  /** Set when the method has nothing more to do (its own convergence test). */
  stop: StopReason | null;
}

/** One image's optimizer state. */
export interface MethodState {
  /** The method's name, as its checkpoints record it. */
  readonly name: string;
  /** The latent to evaluate next (the loop copies it; the method may change it afterwards). */
  readonly point: Float32Array;
  /** Steps (updates of the latent) completed. */
  readonly steps: number;
  /** Takes the loss and gradient at `point`; `pass` is that evaluation's 1-based count. */
  observe(loss: number, gradient: Float32Array, pass: number): Observation;
  /** Moves `point` on; returns why there is no next point, or `null`. */
  advance(): StopReason | null;
  /** The state, for a checkpoint that resumes it bit for bit. */
  save(): CheckpointParts;
}

/** Raised for an image whose loss, gradient or latent stops being finite. */
export class NonFiniteError extends Error {
  override readonly name = "NonFiniteError";
}

/**
 * The index of the first NaN or ±Infinity in `values`, or -1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(firstNonFinite(new Float32Array([1, NaN, Infinity])), 1);
 * assert.equal(firstNonFinite(new Float32Array([1, 2])), -1);
 * ```
 */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}

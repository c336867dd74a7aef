/**
 * Learning-rate schedules: `constant`, or `cosine` decay to 0 over `maxSteps`; both after an
 * optional linear warm-up of `warmupSteps` updates.
 *
 * @module
 */

/** A schedule's description, as in the `optimize` config. */
export interface ScheduleOptions {
  /** `"constant"` or `"cosine"`. */
  kind: "constant" | "cosine";
  /** The peak learning rate (after warm-up). */
  lr: number;
  /** Updates an image gets at most; the cosine reaches 0 at this step. */
  maxSteps: number;
  /** Updates of linear warm-up from lr/warmupSteps up to lr. Default: `0`. */
  warmupSteps?: number;
}

/** Raised when a schedule's numbers cannot describe a schedule. */
export class ScheduleError extends Error {
  override readonly name = "ScheduleError";
}

/**
 * The learning rate of update `step` (0-based: the first update is step 0).
 *
 * - warm-up, `step < warmupSteps`: `lr · (step + 1) / warmupSteps`, so no update is wasted at 0;
 * - `constant`: `lr` afterwards;
 * - `cosine`: `lr · ½ · (1 + cos(π · (step − warmupSteps) / (maxSteps − warmupSteps)))`, which is
 *   `lr` right after the warm-up and 0 at `step = maxSteps`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const cosine = { kind: "cosine", lr: 0.1, maxSteps: 100, warmupSteps: 10 } as const;
 * assert.equal(learningRate(cosine, 0), 0.01); // warm-up: lr · 1/10
 * assert.ok(Math.abs(learningRate(cosine, 55) - 0.05) < 1e-12); // half-way down the cosine
 * ```
 */
export function learningRate(options: ScheduleOptions, step: number): number {
  const { kind, lr, maxSteps, warmupSteps = 0 } = options;
  if (!Number.isInteger(maxSteps) || maxSteps < 1) {
    throw new ScheduleError(`maxSteps: expected a positive integer, found ${maxSteps}`);
  }
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0 || warmupSteps > maxSteps) {
    throw new ScheduleError(
      `warmupSteps: expected an integer from 0 to maxSteps (${maxSteps}), found ${warmupSteps}`,
    );
  }
  if (!Number.isInteger(step) || step < 0) {
    throw new ScheduleError(`step: expected a non-negative integer, found ${step}`);
  }
  if (kind !== "constant" && kind !== "cosine") {
    throw new ScheduleError(`kind: expected "constant" or "cosine", found ${kind}`);
  }
  if (step < warmupSteps) return lr * (step + 1) / warmupSteps;
  if (kind === "constant") return lr;
  const span = maxSteps - warmupSteps;
  const progress = span === 0 ? 1 : Math.min(1, (step - warmupSteps) / span);
  return lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}

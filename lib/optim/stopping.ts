/**
 * When one image's optimization stops: once the relative improvement of its best loss over the
 * last `patience` steps falls below `tolerance` ("converged"), or after `maxSteps` updates
 * ("max_steps"). (The pass budget, "max_passes", is counted by the loop, which sees every
 * evaluation.) Also the loss curve kept for reports, downsampled to a bounded number of points.
 *
 * @module
 */

/**
 * Why an image's optimization stopped: its loss stopped improving or its method found nothing
 * more to do ("converged"), it took `max_steps` updates, or it used `max_passes` evaluations.
 */
export type StopReason = "converged" | "max_steps" | "max_passes";

/** The stopping rule's numbers, as in the `optimize` config. */
export interface StoppingOptions {
  /** Steps over which the best loss must improve. */
  patience: number;
  /** Smallest relative improvement of the best loss over `patience` steps that keeps going. */
  tolerance: number;
  /** Updates an image gets at most. */
  maxSteps: number;
}

/** What {@link StoppingTracker.record} learned from one loss. */
export interface RecordResult {
  /** The loss is the best so far (strictly lower than every earlier one, or the first). */
  improved: boolean;
  /** Why to stop now, or `null` to take another update. */
  stop: StopReason | null;
}

/** Raised when a loss is NaN or ±Infinity; `step` is the update count of the latent evaluated. */
export class NonFiniteLossError extends Error {
  override readonly name = "NonFiniteLossError";
  constructor(readonly step: number, readonly value: number) {
    super(`loss at step ${step} is ${value}; expected a finite number`);
  }
}

/** Raised when stopping options cannot describe a rule. */
export class StoppingOptionsError extends Error {
  override readonly name = "StoppingOptionsError";
}

/**
 * Tracks one image's losses and decides when it stops.
 *
 * The loop it expects: evaluate the loss of the current latent (after `k` updates), `record` it;
 * if `stop` is set, finish with the best latent seen; otherwise apply update `k + 1` and repeat.
 * `history[k]` is then the loss after `k` updates, `history[0]` the loss before any.
 *
 * The rule, checked after each record with `k = history.length − 1`:
 * - "converged" when `k ≥ patience` and `(best(0..k−patience) − best(0..k)) / |best(0..k−patience)|`
 *   is below `tolerance` (a best loss of exactly 0 counts as no improvement);
 * - otherwise "max_steps" when `k ≥ maxSteps`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const tracker = new StoppingTracker({ patience: 2, tolerance: 0.01, maxSteps: 100 });
 * assert.deepEqual(tracker.record(1.0), { improved: true, stop: null });
 * assert.deepEqual(tracker.record(0.5), { improved: true, stop: null });
 * // 50.1% better than 2 steps before: goes on; then 0.4% better: stops.
 * assert.deepEqual(tracker.record(0.499), { improved: true, stop: null });
 * assert.deepEqual(tracker.record(0.498), { improved: true, stop: "converged" });
 * ```
 */
export class StoppingTracker {
  readonly #options: StoppingOptions;
  readonly #history: number[] = [];
  // bestSoFar[k] = min(history[0..k]); the rule compares two entries of it.
  readonly #bestSoFar: number[] = [];
  #bestStep = -1;
  #stop: StopReason | null = null;

  /** Starts a tracker, replaying `history` (from a checkpoint) if given. */
  constructor(options: StoppingOptions, history: ArrayLike<number> = []) {
    const { patience, tolerance, maxSteps } = options;
    if (!Number.isInteger(patience) || patience < 1) {
      throw new StoppingOptionsError(`patience: expected a positive integer, found ${patience}`);
    }
    if (!Number.isFinite(tolerance) || tolerance < 0) {
      throw new StoppingOptionsError(
        `tolerance: expected a non-negative number, found ${tolerance}`,
      );
    }
    if (!Number.isInteger(maxSteps) || maxSteps < 0) {
      throw new StoppingOptionsError(
        `maxSteps: expected a non-negative integer, found ${maxSteps}`,
      );
    }
    this.#options = { patience, tolerance, maxSteps };
    for (let i = 0; i < history.length; i++) this.record(history[i]);
  }

  /** Records the loss of the latent after `history.length` updates. */
  record(loss: number): RecordResult {
    const k = this.#history.length;
    if (this.#stop !== null) {
      throw new StoppingOptionsError(
        `loss recorded at step ${k} after the optimization stopped (${this.#stop})`,
      );
    }
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(k, loss);
    const improved = k === 0 || loss < this.#bestSoFar[k - 1];
    this.#history.push(loss);
    this.#bestSoFar.push(improved ? loss : this.#bestSoFar[k - 1]);
    if (improved) this.#bestStep = k;
    const { patience, tolerance, maxSteps } = this.#options;
    if (k >= patience) {
      const before = this.#bestSoFar[k - patience];
      const relative = before === 0 ? 0 : (before - this.#bestSoFar[k]) / Math.abs(before);
      if (relative < tolerance) this.#stop = "converged";
    }
    if (this.#stop === null && k >= maxSteps) this.#stop = "max_steps";
    return { improved, stop: this.#stop };
  }

  /** Every loss recorded, in order (a copy). */
  get history(): number[] {
    return [...this.#history];
  }

  /** The lowest loss recorded (Infinity before any). */
  get bestLoss(): number {
    return this.#bestStep < 0 ? Infinity : this.#history[this.#bestStep];
  }

  /** The update count at which the best loss was seen (-1 before any). */
  get bestStep(): number {
    return this.#bestStep;
  }

  /** Updates applied so far: `history.length − 1` (0 before any record). */
  get steps(): number {
    return Math.max(0, this.#history.length - 1);
  }

  /** Why the optimization stopped, or `null` while it goes on. */
  get stop(): StopReason | null {
    return this.#stop;
  }
}

/**
 * Downsamples a loss curve to at most `maxPoints` points, evenly spaced over the steps, always
 * keeping the first and the last.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const history = Array.from({ length: 1001 }, (_, k) => 1 / (k + 1));
 * const { steps, losses } = downsampleCurve(history, 3);
 * assert.deepEqual(steps, [0, 500, 1000]);
 * assert.deepEqual(losses, [1, 1 / 501, 1 / 1001]);
 * ```
 */
export function downsampleCurve(
  losses: ArrayLike<number>,
  maxPoints = 200,
): { steps: number[]; losses: number[] } {
  if (!Number.isInteger(maxPoints) || maxPoints < 2) {
    throw new StoppingOptionsError(
      `maxPoints: expected an integer of at least 2, found ${maxPoints}`,
    );
  }
  const n = losses.length;
  const steps: number[] = [];
  if (n <= maxPoints) {
    for (let i = 0; i < n; i++) steps.push(i);
  } else {
    for (let i = 0; i < maxPoints; i++) steps.push(Math.round(i * (n - 1) / (maxPoints - 1)));
  }
  return { steps, losses: steps.map((s) => losses[s]) };
}

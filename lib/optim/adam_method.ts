/**
 * Adam as a method of the optimization loop: every evaluation is a step. The loss of the latent
 * after `k` updates is recorded, then (unless the image stops) update `k + 1` is applied with the
 * learning rate of the schedule at step `k`. The gradient-free method runs this same state on its
 * direction `E(D(z)) − E(x)`.
 *
 * @module
 */
import { type AdamState, adamUpdate, createAdamState, NonFiniteGradientError } from "./adam.ts";
import { type CheckpointParts, checkpointReader } from "./checkpoint.ts";
import { firstNonFinite, type MethodState, NonFiniteError, type Observation } from "./method.ts";
import { learningRate, type ScheduleOptions } from "./schedule.ts";
import type { StopReason } from "./stopping.ts";

/**
 * One image's Adam state.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const schedule = { kind: "constant", lr: 0.1, maxSteps: 100 } as const;
 * const adam = AdamMethod.start(new Float32Array([1, 2]), schedule);
 * adam.observe(5, new Float32Array([0.5, -1]));
 * adam.advance();
 * assert.equal(adam.steps, 1);
 * assert.deepEqual(Array.from(adam.point), [Math.fround(0.9), Math.fround(2.1)]);
 * ```
 */
export class AdamMethod implements MethodState {
  readonly name = "adam";
  readonly #z: Float32Array;
  readonly #state: AdamState;
  readonly #schedule: ScheduleOptions;
  #gradient: Float32Array | null = null;

  private constructor(z: Float32Array, state: AdamState, schedule: ScheduleOptions) {
    this.#z = z;
    this.#state = state;
    this.#schedule = schedule;
  }

  /** A fresh state at `latent` (copied). */
  static start(latent: Float32Array, schedule: ScheduleOptions): AdamMethod {
    return new AdamMethod(latent.slice(), createAdamState(latent.length), schedule);
  }

  /** The state `save` wrote; `source` names the checkpoint in errors. */
  static resume(
    parts: CheckpointParts,
    size: number,
    schedule: ScheduleOptions,
    source: string,
  ): AdamMethod {
    const read = checkpointReader(parts, source);
    const state = { m: read.float32("m", size), v: read.float32("v", size), step: 0 };
    state.step = read.number("step");
    return new AdamMethod(read.float32("latent", size), state, schedule);
  }

  get point(): Float32Array {
    return this.#z;
  }

  get steps(): number {
    return this.#state.step;
  }

  observe(loss: number, gradient: Float32Array): Observation {
    this.#gradient = gradient;
    return { stepLoss: loss, stop: null };
  }

  advance(): StopReason | null {
    const step = this.#state.step;
    try {
      adamUpdate(this.#z, this.#gradient!, this.#state, learningRate(this.#schedule, step));
    } catch (e) {
      if (e instanceof NonFiniteGradientError) {
        throw new NonFiniteError(`gradient is ${e.value} at step ${e.step - 1}`);
      }
      throw e;
    }
    const bad = firstNonFinite(this.#z);
    if (bad >= 0) {
      throw new NonFiniteError(`latent became ${this.#z[bad]} at step ${this.#state.step}`);
    }
    return null;
  }

  save(): CheckpointParts {
    const { m, v, step } = this.#state;
    return { method: this.name, numbers: { step }, arrays: { latent: this.#z, m, v } };
  }
}

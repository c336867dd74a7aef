/**
 * Backpressure: a listing hands out items only while fewer than a bounded number of actions are
 * queued or running in the run's work pools, so no queue grows with the number of items and a
 * run of millions of items holds a few thousand in flight. Cached items flow on at once and
 * do not count; batched tasks still get full batches (the bound is far above a batch).
 *
 * @module
 */

/** Actions queued or running, run-wide, above which listings wait. */
export const IN_FLIGHT = 8192;

/**
 * Counts actions in flight and lets listings wait for room.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const gate = new FlowGate(2);
 * gate.enter();
 * gate.enter();
 * let roomy = false;
 * const waiting = gate.room(new AbortController().signal)!.then(() => roomy = true);
 * assert.equal(roomy, false);
 * gate.leave();
 * await waiting;
 * assert.equal(roomy, true);
 * assert.equal(gate.room(new AbortController().signal), undefined);
 * ```
 */
export class FlowGate {
  readonly limit: number;
  #inFlight = 0;
  #waiters: (() => void)[] = [];

  constructor(limit = IN_FLIGHT) {
    this.limit = limit;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** An action was queued. */
  enter(): void {
    this.#inFlight++;
  }

  /** An action was recorded, failed, or dropped. */
  leave(): void {
    this.#inFlight--;
    if (this.#inFlight < this.limit && this.#waiters.length > 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const w of waiters) w();
    }
  }

  /** Undefined when there is room now; else resolves once there is (or `signal` aborts). */
  room(signal: AbortSignal): Promise<void> | undefined {
    if (this.#inFlight < this.limit || signal.aborted) return undefined;
    return new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        resolve();
      };
      signal.addEventListener("abort", done);
      this.#waiters.push(done);
    }).then(() => this.room(signal));
  }
}

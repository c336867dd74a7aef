/**
 * Per-host admission for downloads: a concurrency limit and a quota back-off, so one host that
 * refuses (HTTP 429, "Quota exceeded") makes only its own callers wait while other hosts go on.
 *
 * @module
 */

import { sleep } from "../base/sleep.ts";
import { timeOfDay, type WaitBoard, waits as processWaits } from "../base/waits.ts";

/** Options of {@link HostGate}. */
export interface HostGateOptions {
  /** Requests in flight per host. Default 16. */
  perHost?: number;
  /** First back-off after a quota refusal, in seconds; doubles while refusals persist. Default 600. */
  quotaBackoffS?: number;
  /** Longest single back-off, in seconds. Default 86,400 (one day). */
  maxBackoffS?: number;
  /** Clock in ms, replaceable so back-off arithmetic can be checked. Default `Date.now`. */
  now?: () => number;
  /**
   * Waits out a back-off of `ms` on the clock of `now` (rejecting when `signal` aborts);
   * replaceable together with `now`. Default: a timer ({@link sleep}).
   */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** The setting a wait names as the reason of its length, e.g. `download.quota_backoff_s`. */
  backoffSetting?: string;
  /** The setting a wait for a free slot names, e.g. `download.concurrency_per_host`. */
  perHostSetting?: string;
  /** Where a caller waiting out a back-off says so. Default: the process's board. */
  waits?: WaitBoard;
}

interface HostState {
  active: number;
  waiters: Array<() => void>;
  backoffUntil: number;
  /** Consecutive quota periods without a success in between. */
  level: number;
  /** When the current (or last) back-off period began. */
  periodStart: number;
  /** When a request last succeeded. */
  lastSuccessAt: number;
}

/** Returns the `host[:port]` a URL is gated under. */
export function hostOf(url: string): string {
  return new URL(url).host;
}

/**
 * Limits concurrent requests per host and holds back a host that reported a quota refusal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const gate = new HostGate({ perHost: 1, quotaBackoffS: 60 });
 * const release = await gate.acquire("example.org");
 * assert.equal(gate.activeCount("example.org"), 1);
 * release();
 * assert.equal(gate.activeCount("example.org"), 0);
 * assert.equal(gate.reportQuota("example.org"), 60_000);
 * assert.equal(await gate.acquireUnlessBackedOff("example.org"), null);
 * ```
 */
export class HostGate {
  readonly perHost: number;
  readonly quotaBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #setting?: string;
  readonly #perHostSetting?: string;
  readonly #waits: WaitBoard;
  readonly #hosts = new Map<string, HostState>();

  constructor(
    {
      perHost = 16,
      quotaBackoffS = 600,
      maxBackoffS = 86_400,
      now = Date.now,
      sleep: wait = sleep,
      backoffSetting,
      perHostSetting,
      waits = processWaits,
    }: HostGateOptions = {},
  ) {
    if (!(perHost >= 1)) throw new RangeError(`perHost must be at least 1, found ${perHost}`);
    if (!(quotaBackoffS >= 0)) {
      throw new RangeError(`quotaBackoffS must be ≥ 0, found ${quotaBackoffS}`);
    }
    this.perHost = perHost;
    this.quotaBackoffMs = quotaBackoffS * 1000;
    this.maxBackoffMs = maxBackoffS * 1000;
    this.#now = now;
    this.#sleep = wait;
    this.#setting = backoffSetting;
    this.#perHostSetting = perHostSetting;
    this.#waits = waits;
  }

  #state(host: string): HostState {
    let state = this.#hosts.get(host);
    if (!state) {
      state = {
        active: 0,
        waiters: [],
        backoffUntil: 0,
        level: 0,
        periodStart: 0,
        lastSuccessAt: -1,
      };
      this.#hosts.set(host, state);
    }
    return state;
  }

  /** Milliseconds until `host` may be asked again; 0 when it is not backed off. */
  backoffRemainingMs(host: string): number {
    const state = this.#hosts.get(host);
    return state ? Math.max(0, state.backoffUntil - this.#now()) : 0;
  }

  /** Requests currently admitted for `host`. */
  activeCount(host: string): number {
    return this.#hosts.get(host)?.active ?? 0;
  }

  /** Callers queued for a free slot of `host` (not those sleeping out a back-off). */
  waitingCount(host: string): number {
    return this.#hosts.get(host)?.waiters.length ?? 0;
  }

  /**
   * Records a quota refusal from `host` and returns the back-off now in force, in ms. Refusals
   * that arrive while a back-off is already running belong to the same period and do not double
   * it; the first refusal after a period ends doubles it.
   */
  reportQuota(host: string): number {
    const state = this.#state(host);
    const now = this.#now();
    if (state.backoffUntil > now) return state.backoffUntil - now;
    // A success since the previous back-off began means the quota is not exhausted for good:
    // start again from the base period instead of doubling.
    if (state.lastSuccessAt > state.periodStart) state.level = 0;
    state.level++;
    state.periodStart = now;
    const ms = Math.min(this.maxBackoffMs, this.quotaBackoffMs * 2 ** (state.level - 1));
    state.backoffUntil = now + ms;
    return ms;
  }

  /** Records a successful response from `host`: the next quota refusal starts from the base. */
  reportSuccess(host: string): void {
    const state = this.#hosts.get(host);
    if (!state) return;
    state.lastSuccessAt = this.#now();
    if (state.backoffUntil <= state.lastSuccessAt) state.level = 0;
  }

  /**
   * Waits until `host` is not backed off and has a free slot, then admits the caller. Returns
   * the function that frees the slot; call it exactly once.
   */
  acquire(host: string, signal?: AbortSignal): Promise<() => void> {
    return this.#admit(host, signal, false) as Promise<() => void>;
  }

  /**
   * Like {@link HostGate.acquire}, but resolves with `null` instead of waiting out a back-off
   * (one in force now, or one that starts while waiting for a slot), so the caller can try
   * another mirror first.
   */
  acquireUnlessBackedOff(host: string, signal?: AbortSignal): Promise<(() => void) | null> {
    return this.#admit(host, signal, true);
  }

  /** `drive.google.com: quota exceeded at 06:27, next try 06:37 (download.quota_backoff_s)`. */
  #waitText(host: string, state: HostState): string {
    // To the minute for the long back-offs a quota brings; to the second for short ones.
    const seconds = state.backoffUntil - state.periodStart < 120_000;
    const setting = this.#setting ? ` (${this.#setting})` : "";
    return `${host}: quota exceeded at ${timeOfDay(state.periodStart, seconds)}, next try ${
      timeOfDay(state.backoffUntil, seconds)
    }${setting}`;
  }

  async #admit(
    host: string,
    signal: AbortSignal | undefined,
    skipBackoff: boolean,
  ): Promise<(() => void) | null> {
    const state = this.#state(host);
    for (;;) {
      signal?.throwIfAborted();
      const wait = state.backoffUntil - this.#now();
      if (wait > 0) {
        // Queued callers must see the back-off too (to sleep it out or try another mirror),
        // not stay queued behind slots that nobody will release during it.
        for (const wake of state.waiters.splice(0)) wake();
        if (skipBackoff) return null;
        await this.#waits.during(this.#waitText(host, state), () => this.#sleep(wait, signal));
        continue;
      }
      if (state.active < this.perHost) break;
      const setting = this.#perHostSetting ? ` (${this.#perHostSetting})` : "";
      const queued = this.#waits.begin(
        `${host}: all ${this.perHost} download slots busy${setting}, more downloads queued`,
      );
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = state.waiters.indexOf(wake);
          if (i >= 0) state.waiters.splice(i, 1);
          reject(signal!.reason);
        };
        state.waiters.push(wake);
        signal?.addEventListener("abort", onAbort, { once: true });
      }).finally(() => queued.end());
    }
    state.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.active--;
      state.waiters.shift()?.();
    };
  }
}

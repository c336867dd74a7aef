/**
 * Retrying an async operation with exponential backoff and full jitter. Used by the engine for
 * every task's retryable errors and by the download library's own tests.
 *
 * An error is retried when its `retryable` is `true`. It may also say `countsAsAttempt: false`
 * (a quota refusal: "not now", whose waiting a host gate enforces, so a long quota period does
 * not use up the attempts) and `delayMs` (the least time to wait before the next attempt).
 *
 * @module
 */

import { sleep } from "./sleep.ts";
import { timeOfDay, type WaitBoard, waits as processWaits } from "./waits.ts";

/** Options of {@link retry}. */
export interface RetryOptions {
  /** Attempts in total, the first included. Default 5. */
  attempts?: number;
  /** Backoff cap before the first retry, in ms; doubles each retry. Default 500. */
  baseMs?: number;
  /** Largest backoff cap, in ms. Default 30,000. */
  maxMs?: number;
  /** Stops waiting and retrying when aborted; the abort reason is thrown. */
  signal?: AbortSignal;
  /** Which errors are worth another attempt. Default: errors whose `retryable` is `true`. */
  isRetryable?: (error: unknown) => boolean;
  /**
   * Which retryable errors use up an attempt. Default: those whose `countsAsAttempt` is not
   * `false`. Errors that only say "not now" (a host's quota, whose waiting a host gate already
   * enforces) are exempted so that a long quota period does not exhaust the attempts.
   */
  countsAsAttempt?: (error: unknown) => boolean;
  /** The least wait before retrying after this error, in ms. Default: the error's `delayMs`. */
  minDelayMs?: (error: unknown) => number;
  /** Called before each wait with the error, the attempt number that failed and the delay. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Source of randomness in [0, 1) for the jitter. Default `Math.random`. */
  random?: () => number;
  /**
   * What is retried (`dataset.spec`): given, each wait is on the board of `waits` (default the
   * process's) as `<name>: <the error>; next try at 06:28:05`, so a display names it.
   */
  name?: string;
  waits?: WaitBoard;
}

function defaultIsRetryable(error: unknown): boolean {
  return typeof error === "object" && error !== null &&
    (error as { retryable?: unknown }).retryable === true;
}

function defaultCountsAsAttempt(error: unknown): boolean {
  return (error as { countsAsAttempt?: unknown } | null)?.countsAsAttempt !== false;
}

function defaultMinDelay(error: unknown): number {
  const ms = (error as { delayMs?: unknown } | null)?.delayMs;
  return typeof ms === "number" && ms > 0 ? ms : 0;
}

/**
 * Runs `fn` until it succeeds, a non-retryable error occurs, or the attempts are used up; the
 * last error is rethrown unchanged. Waits between attempts are drawn uniformly from
 * `[0, min(maxMs, baseMs * 2^n))` ("full jitter"), so many clients retrying at once spread out,
 * and are at least the error's minimum delay. When `signal` aborts, the wait ends and the
 * signal's reason is thrown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * // A flaky step that fails twice with a retryable error, then succeeds.
 * let calls = 0;
 * const text = await retry(async () => {
 *   if (++calls < 3) throw Object.assign(new Error("connection reset"), { retryable: true });
 *   return "ok";
 * }, { attempts: 3, baseMs: 1 });
 * assert.equal(text, "ok");
 * assert.equal(calls, 3);
 * // An error that is not retryable ends at once.
 * await assert.rejects(retry(() => Promise.reject(new Error("404")), { baseMs: 1 }), /404/);
 * ```
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  {
    attempts = 5,
    baseMs = 500,
    maxMs = 30_000,
    signal,
    isRetryable = defaultIsRetryable,
    countsAsAttempt = defaultCountsAsAttempt,
    minDelayMs = defaultMinDelay,
    onRetry,
    random = Math.random,
    name,
    waits = processWaits,
  }: RetryOptions = {},
): Promise<T> {
  if (!(attempts >= 1)) throw new RangeError(`attempts must be at least 1, found ${attempts}`);
  let counted = 0;
  let backoffStep = 0;
  for (let call = 1;; call++) {
    signal?.throwIfAborted();
    try {
      return await fn(call);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!isRetryable(error)) throw error;
      if (countsAsAttempt(error)) counted++;
      if (counted >= attempts) throw error;
      const cap = Math.min(maxMs, baseMs * 2 ** backoffStep);
      backoffStep++;
      const delay = Math.max(minDelayMs(error), Math.floor(random() * cap));
      onRetry?.(error, call, delay);
      if (name === undefined) await sleep(delay, signal);
      else await waits.during(waitText(name, error, delay), () => sleep(delay, signal));
    }
  }
}

/** `dataset.spec: <the error's first line>; next try at 06:28:05`. */
function waitText(name: string, error: unknown, delayMs: number): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = message.split("\n")[0];
  const shown = line.length > 200 ? `${line.slice(0, 200)}…` : line;
  return `${name}: ${shown}; next try at ${timeOfDay(Date.now() + delayMs, true)}`;
}

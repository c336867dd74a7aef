/**
 * The one abortable `sleep` every wait of latentforge uses.
 *
 * @module
 */

/**
 * Waits `ms` milliseconds, or rejects with the signal's reason when it is aborted first (at
 * once when it already is). The timer and the listener go together, so a loop that waits for
 * days leaves nothing behind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * await sleep(10);
 * const stop = new AbortController();
 * stop.abort(new Error("interrupted"));
 * await assert.rejects(sleep(60_000, stop.signal), /interrupted/);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

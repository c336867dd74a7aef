/**
 * Retrying an async operation with exponential backoff and full jitter.
 *
 * @module
 */

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
   * Which retryable errors use up an attempt. Default: all. Errors that only say "not now"
   * (a host's quota, whose waiting a host gate already enforces) can be exempted so that a long
   * quota period does not exhaust the attempts.
   */
  countsAsAttempt?: (error: unknown) => boolean;
  /** Called before each wait with the error, the attempt number that failed and the delay. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Source of randomness in [0, 1) for the jitter. Default `Math.random`. */
  random?: () => number;
}

function defaultIsRetryable(error: unknown): boolean {
  return typeof error === "object" && error !== null &&
    (error as { retryable?: unknown }).retryable === true;
}

/**
 * Waits `ms` milliseconds, or rejects with the signal's reason when it is aborted first.
 *
 * @example
 * ```ts
 * await sleep(10);
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

/**
 * Runs `fn` until it succeeds, a non-retryable error occurs, or the attempts are used up; the
 * last error is rethrown unchanged. Waits between attempts are drawn uniformly from
 * `[0, min(maxMs, baseMs * 2^n))` ("full jitter"), so many clients retrying at once spread out.
 *
 * @example
 * ```ts
 * const fetchSomething = async (attempt: number) =>
 *   (await fetch(`http://127.0.0.1:8080/?try=${attempt}`)).text();
 * const body = await retry((attempt) => fetchSomething(attempt), { attempts: 3, baseMs: 100 });
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
    countsAsAttempt = () => true,
    onRetry,
    random = Math.random,
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
      const delay = Math.floor(random() * cap);
      onRetry?.(error, call, delay);
      await sleep(delay, signal);
    }
  }
}

/**
 * Retrying an action: the default policy, and one attempt loop over lib/base/retry.ts shared by
 * the runner and remote workers.
 *
 * @module
 */
import { retry } from "../base/retry.ts";
import type { RetryPolicy } from "./task.ts";
import type { Work } from "./pool.ts";

/** The default retry policy for retryable errors. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseMs: 500, maxMs: 30_000 };

/**
 * Runs one action, retrying its retryable errors under `policy` (see lib/base/retry.ts: an error
 * may exempt itself from the attempt count and ask for a least delay). `work.attempts` counts
 * the attempts made.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  work: Work,
  fn: () => Promise<T>,
  signal: AbortSignal,
  onRetry: (attempt: number, delayMs: number, e: unknown) => void,
): Promise<T> {
  return await retry(() => {
    work.attempts++;
    return fn();
  }, {
    attempts: policy.attempts,
    baseMs: policy.baseMs,
    maxMs: policy.maxMs,
    signal,
    onRetry: (e, call, delayMs) => onRetry(call, delayMs, e),
  });
}

/**
 * The engine's own errors, and how any error is worded for a user.
 *
 * @module
 */

/** Raised when a task breaks the engine's contract (an item listed twice, an unknown object). */
export class TaskContractError extends Error {
  override readonly name = "TaskContractError";
}

/** Raised when a task asks for the output of a task that is not part of the run. */
export class UpstreamError extends Error {
  override readonly name = "UpstreamError";
}

/**
 * The message of an error, with its cause when the message does not already say it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const e = new Error("download failed", { cause: new Error("connection reset") });
 * assert.equal(errorText(e), "download failed (connection reset)");
 * ```
 */
export function errorText(e: unknown): string {
  if (e instanceof Error) {
    const cause = e.cause instanceof Error && !e.message.includes(e.cause.message)
      ? ` (${e.cause.message})`
      : "";
    return `${e.message}${cause}`;
  }
  return String(e);
}

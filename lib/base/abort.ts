/**
 * Telling an interruption (Ctrl-C, a run stopped by a fault of the machine) from a failure.
 *
 * @module
 */

/**
 * Whether an error is an interruption rather than a failure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(isAbort(new DOMException("stopped", "AbortError")), true);
 * assert.equal(isAbort(new Error("disk full")), false);
 * ```
 */
export function isAbort(e: unknown): boolean {
  return e instanceof Error && (e.name === "AbortError" || e.name === "Interrupted");
}

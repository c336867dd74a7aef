/**
 * Sizes in bytes as people read them.
 *
 * @module
 */

/**
 * "1.2 MB" style sizes (powers of 1000).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatBytes(1_234_000), "1.2 MB");
 * assert.equal(formatBytes(512), "512 B");
 * ```
 */
export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

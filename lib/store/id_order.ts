/**
 * The order Deno KV keeps string key parts in (by their UTF-8 bytes, which is the order of
 * their code points), and so the order items are read from the records in.
 *
 * @module
 */

/**
 * Compares two item ids by the UTF-8 bytes they encode to (negative, zero or positive).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(["b", "a10", "a9"].sort(compareIds), ["a10", "a9", "b"]);
 * // A code point above U+FFFF sorts after U+FFFD, as its UTF-8 bytes do (JavaScript's `<`
 * // compares UTF-16 code units and says otherwise).
 * assert.equal(compareIds("\u{1F600}", "\uFFFD") > 0, true);
 * ```
 */
export function compareIds(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate stands for a code point above U+FFFF: after every other code unit.
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

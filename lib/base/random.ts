/**
 * The one seeded random source of latentforge's checks, tests and benchmarks: the same seed
 * gives the same numbers on every machine.
 *
 * @module
 */

/**
 * A small deterministic generator (mulberry32) yielding uniform numbers in [0, 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const a = seededRandom(7);
 * const b = seededRandom(7);
 * assert.deepEqual([a(), a(), a()], [b(), b(), b()]);
 * assert.ok(a() < 1);
 * ```
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The id scheme of flipped items: with `preprocess.flip`, image `<id>` also has the item
 * `<id>#flip`, which preprocess, encode and optimize treat as an image of its own (its own key,
 * its own cached results), so turning flips on computes only the new items and turning them off
 * reruns only `package`.
 *
 * @module
 */

/** What a flipped item's id ends with. */
export const FLIP_SUFFIX = "#flip";

/** Raised when an image id would be mistaken for a flipped item's id. */
export class FlippedIdError extends Error {
  override readonly name = "FlippedIdError";
}

/**
 * The id of an image's flipped item.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(flippedId("00017"), "00017#flip");
 * ```
 */
export function flippedId(id: string): string {
  return id + FLIP_SUFFIX;
}

/**
 * The image id a flipped item belongs to, or `null` for an id that is not a flipped item's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(unflippedId("00017#flip"), "00017");
 * assert.equal(unflippedId("00017"), null);
 * ```
 */
export function unflippedId(id: string): string | null {
  return id.endsWith(FLIP_SUFFIX) ? id.slice(0, -FLIP_SUFFIX.length) : null;
}

/**
 * Image ids interleaved with their flipped items' ids (`a`, `a#flip`, `b`, `b#flip`, …), so
 * that the first N items hold whole pairs. Refuses image ids that are flipped ids of others.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(withFlippedIds(["b", "a"]), ["a", "a#flip", "b", "b#flip"]);
 * ```
 */
export function withFlippedIds(ids: readonly string[]): string[] {
  const all = new Set(ids);
  const out: string[] = [];
  for (const id of [...all].sort()) {
    const base = unflippedId(id);
    if (base !== null && all.has(base)) {
      throw new FlippedIdError(
        `image ids "${base}" and "${id}" clash: with preprocess.flip, "${id}" names the ` +
          `flipped item of "${base}"; rename one of the files`,
      );
    }
    out.push(id, flippedId(id));
  }
  return out;
}

/**
 * The digest a dependant keys on for a per-item task's outputs as a whole: the sha256 of the
 * canonical JSON of `{ fails: [[id, task, reason]…], items: [[id, digest]…] }`, both in
 * ascending id order by UTF-16 code units (as these keys have always been made), hashed item by
 * item as the items come in that order.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { canonicalJson } from "../store/canonical.ts";

/**
 * Hashes a task's outputs as a whole, item by item.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashJson } from "../store/canonical.ts";
 *
 * const fails: [string, string, string][] = [["c", "verify", "too small"]];
 * const whole = new WholeHash(fails);
 * assert.equal(whole.add("a", "d1") && whole.add("b", "d2"), true);
 * assert.equal(whole.add("a", "d3"), false); // not after "b": the caller sorts instead
 * const again = new WholeHash(fails);
 * again.add("a", "d1");
 * again.add("b", "d2");
 * assert.equal(again.digest(), hashJson({ items: [["a", "d1"], ["b", "d2"]], fails }));
 * ```
 */
export class WholeHash {
  readonly #hash: Hash;
  #last: string | undefined;
  #count = 0;
  #digest?: string;

  /** Starts with the failures (sorted here). */
  constructor(fails: [string, string, string][]) {
    fails.sort((a, b) => a[0] < b[0] ? -1 : 1);
    this.#hash = createHash("sha256").update(`{"fails":${canonicalJson(fails)},"items":[`);
  }

  /** Items added so far. */
  get count(): number {
    return this.#count;
  }

  /**
   * Adds an item; false (nothing added) when its id does not come after the last one's, or the
   * digest was taken already.
   */
  add(id: string, digest: string): boolean {
    if (this.#digest !== undefined || (this.#last !== undefined && !(this.#last < id))) {
      return false;
    }
    this.#hash.update(`${this.#last === undefined ? "" : ","}${canonicalJson([id, digest])}`);
    this.#last = id;
    this.#count++;
    return true;
  }

  /** The digest of the items added (no more can be added after it). */
  digest(): string {
    return this.#digest ??= this.#hash.update("]}").digest("hex");
  }
}

/**
 * The whole digest of the items `items()` streams (in the records' id order, which differs from
 * UTF-16 order only for ids with characters beyond U+FFFF: then they are read again and sorted
 * in memory).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashJson } from "../store/canonical.ts";
 *
 * async function* items(): AsyncGenerator<[string, string]> {
 *   yield* [["\u{1F600}", "d2"], ["\uFFFD", "d1"]] as [string, string][];
 * }
 * assert.equal(
 *   await wholeDigest(items, []),
 *   hashJson({ items: [["\u{1F600}", "d2"], ["\uFFFD", "d1"]], fails: [] }),
 * );
 * ```
 */
export async function wholeDigest(
  items: () => AsyncIterable<[string, string]>,
  fails: [string, string, string][],
): Promise<string> {
  const whole = new WholeHash([...fails]);
  for await (const [id, digest] of items()) {
    if (!whole.add(id, digest)) {
      const all = await Array.fromAsync(items());
      all.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
      const sorted = new WholeHash(fails);
      for (const [i, d] of all) sorted.add(i, d);
      return sorted.digest();
    }
  }
  return whole.digest();
}

/**
 * The order items flow in: ascending ids, compared as Deno KV compares string key parts (by
 * their UTF-8 bytes, which is the order of their code points). A listing in this order lets
 * the engine read a task's records in one pass beside it.
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

/** One item of a stream in id order, as {@link orderedReader} reads it. */
interface Keyed {
  id: string;
}

/**
 * Reads items of `stream` (in id order, see {@link compareIds}) by id: ids asked in ascending
 * order are found in one pass beside the stream; an id asked out of order is looked up with
 * `lookup`. Undefined for an id the stream does not hold.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * async function* stream() {
 *   yield* [{ id: "a", n: 1 }, { id: "c", n: 3 }];
 * }
 * const all = new Map([["a", { id: "a", n: 1 }], ["c", { id: "c", n: 3 }]]);
 * const read = orderedReader(stream(), (id) => Promise.resolve(all.get(id)));
 * assert.equal((await read("a"))?.n, 1);
 * assert.equal(await read("b"), undefined);
 * assert.equal((await read("c"))?.n, 3);
 * assert.equal((await read("a"))?.n, 1); // out of order: looked up
 * ```
 */
export function orderedReader<T extends Keyed>(
  stream: AsyncIterable<T>,
  lookup: (id: string) => Promise<T | undefined>,
): (id: string) => Promise<T | undefined> {
  const it = stream[Symbol.asyncIterator]();
  let head: T | undefined;
  let ended = false;
  let last: string | undefined;
  return async (id) => {
    if (last !== undefined && compareIds(id, last) < 0) return lookup(id);
    last = id;
    while (!ended && (head === undefined || compareIds(head.id, id) < 0)) {
      const next = await it.next();
      if (next.done) ended = true;
      else head = next.value;
    }
    return head !== undefined && head.id === id ? head : undefined;
  };
}

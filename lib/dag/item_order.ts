/**
 * The order items flow in: ascending ids, compared as Deno KV compares string key parts (by
 * their UTF-8 bytes, which is the order of their code points). A listing in this order lets
 * the engine read a task's records in one pass beside it.
 *
 * @module
 */
import { compareIds } from "../store/id_order.ts";

export { compareIds };

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

/**
 * Objects by other names: an action may record that one of its output objects is also known
 * as, say, `md5:<hex>` (the MD5 a dataset spec gives for an image), so bytes already in the
 * store are never fetched again. An alias is written once its object is durable, or — for a
 * download — just before the object is stored (`ItemContext.announceAlias`), so a run killed
 * before the action's record finds the bytes; `verify` drops those whose object was corrupt,
 * `gc` those whose object is not in the store, and a lookup ignores one whose object is gone.
 *
 * @module
 */
import { statOrNull } from "../base/fs.ts";
import type { ObjectStore } from "./objects.ts";
import type { Records } from "./records.ts";

/**
 * The aliases of a cache, read with one scan on first use and kept current by {@link add}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "./objects.ts";
 * import { openRecords } from "./records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const [store, records] = [new ObjectStore(cache), await openRecords(cache)];
 * const digest = await store.put(new TextEncoder().encode("a"));
 * await records.putAliases([["md5:0cc175b9c0f1b6a831c399e269772661", digest]]);
 * const aliases = new ObjectAliases(records, store);
 * assert.deepEqual(await aliases.lookup("md5:0cc175b9c0f1b6a831c399e269772661"), { digest, size: 1 });
 * assert.equal(await aliases.lookup("md5:ffffffffffffffffffffffffffffffff"), null);
 * records.close();
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export class ObjectAliases {
  readonly #records: Records;
  readonly #store: ObjectStore;
  #map?: Promise<Map<string, string>>;
  readonly #added = new Map<string, string>();

  constructor(records: Records, store: ObjectStore) {
    this.#records = records;
    this.#store = store;
  }

  /** The object named `name` and its size, when it is still in the store. */
  async lookup(name: string): Promise<{ digest: string; size: number } | null> {
    const digest = this.#added.get(name) ?? (await (this.#map ??= this.#records.aliases()))
      .get(name);
    if (digest === undefined) return null;
    const info = await statOrNull(this.#store.path(digest));
    return info ? { digest, size: info.size } : null;
  }

  /** Notes an alias this run records (the caller writes the record). */
  add(name: string, digest: string): void {
    this.#added.set(name, digest);
  }
}

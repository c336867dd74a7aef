/**
 * What a run keeps per item, whatever the number of items: each id once (interned, shared by
 * every task), and per task one byte per item saying where the item stands. Everything else
 * about an item — its output, its key, why it runs — flows through the run and is read back
 * from the records when asked for, so memory grows by a few dozen bytes per item, not by its
 * outputs.
 *
 * @module
 */

/** Where an item stands in one task. */
export const ItemState = {
  /** Not seen by the task. */
  none: 0,
  /** Admitted, not settled yet. */
  listed: 1,
  /** Its output came from the cache. */
  cached: 2,
  /** Its action ran in this run and recorded an output. */
  ran: 3,
  /** Its action failed. */
  failed: 4,
  /** A plan: it would (or may) run; a placeholder flowed on. */
  planned: 5,
} as const;

/** One of {@link ItemState}'s values. */
export type ItemStateCode = typeof ItemState[keyof typeof ItemState];

/**
 * The ids of a run's items, each stored once and numbered in the order they were first seen.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const table = new ItemTable();
 * assert.equal(table.index("a"), 0);
 * assert.equal(table.index("b"), 1);
 * assert.equal(table.index("a"), 0);
 * assert.equal(table.find("c"), -1);
 * assert.equal(table.id(1), "b");
 * assert.equal(table.size, 2);
 * ```
 */
export class ItemTable {
  readonly #index = new Map<string, number>();
  readonly #ids: string[] = [];

  /** The number of item `id`, added when new. */
  index(id: string): number {
    let i = this.#index.get(id);
    if (i === undefined) {
      i = this.#ids.length;
      this.#index.set(id, i);
      this.#ids.push(id);
    }
    return i;
  }

  /** The number of item `id`, or -1 when the run has not seen it. */
  find(id: string): number {
    return this.#index.get(id) ?? -1;
  }

  /** The id of item number `i`. */
  id(i: number): string {
    return this.#ids[i];
  }

  get size(): number {
    return this.#ids.length;
  }
}

/**
 * One task's {@link ItemState} per item of an {@link ItemTable}: a byte each.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const table = new ItemTable();
 * const states = new ItemStates(table);
 * states.set("a", ItemState.ran);
 * assert.equal(states.get("a"), ItemState.ran);
 * assert.equal(states.get("b"), ItemState.none);
 * assert.deepEqual([...states.ids((s) => s === ItemState.ran)], ["a"]);
 * ```
 */
export class ItemStates {
  readonly #table: ItemTable;
  #bytes = new Uint8Array(1024);

  constructor(table: ItemTable) {
    this.#table = table;
  }

  get(id: string): ItemStateCode {
    const i = this.#table.find(id);
    return (i < 0 || i >= this.#bytes.length ? 0 : this.#bytes[i]) as ItemStateCode;
  }

  set(id: string, state: ItemStateCode): void {
    const i = this.#table.index(id);
    if (i >= this.#bytes.length) {
      const grown = new Uint8Array(Math.max(i + 1, this.#bytes.length * 2));
      grown.set(this.#bytes);
      this.#bytes = grown;
    }
    this.#bytes[i] = state;
  }

  /** The ids whose state passes `test`, in the order the run first saw them. */
  *ids(test: (state: ItemStateCode) => boolean): Generator<string> {
    const n = Math.min(this.#table.size, this.#bytes.length);
    for (let i = 0; i < n; i++) {
      if (this.#bytes[i] !== 0 && test(this.#bytes[i] as ItemStateCode)) yield this.#table.id(i);
    }
  }
}

/**
 * Reading one task's records beside its items instead of loading them: a cursor over the Deno
 * KV entries under a prefix (`["action", task]`, `["superseded", task]`, `["failure", task]`),
 * whose third key part is the item id. Items that arrive in ascending id order (the order KV
 * keeps them) are answered from a read-ahead window, mostly without waiting; an item asked
 * out of order is read on its own. Memory holds one window, whatever the number of records.
 *
 * @module
 */
import { compareIds } from "./id_order.ts";

/** Entries read ahead per KV call. */
const WINDOW = 4096;

/** What a record cursor answers for one item: a value, nothing, or a promise of either. */
export type Lookup<T> = T | undefined | Promise<T | undefined>;

/** A lookup of an item's record(s) by id: a `Map` is one, and so is a {@link RecordCursor}. */
export interface RecordLookup<T> {
  get(id: string): Lookup<T>;
  /** Forgets item `id`'s value (its record was dropped in this run). */
  delete(id: string): unknown;
}

/** How a cursor's entries become the values it answers with. */
export interface CursorOptions<E, T> {
  kv: Deno.Kv;
  /** The prefix (two parts: kind and task); the item id is the next part. */
  prefix: Deno.KvKey;
  /** Several entries per item (superseded records): the value is all of them, in key order. */
  grouped?: boolean;
  /** Turns an entry's value into the answer (e.g. adopts an old record), once per entry. */
  adapt?: (id: string, value: E) => E | Promise<E>;
}

/**
 * A read-ahead cursor over a task's records by item id.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
 * for (const id of ["a", "b", "d"]) await kv.set(["action", "t", id], { id });
 * const cursor = new RecordCursor<{ id: string }, { id: string }>({ kv, prefix: ["action", "t"] });
 * assert.equal((await cursor.get("a"))?.id, "a");
 * assert.equal(await cursor.get("c"), undefined);
 * assert.equal((await cursor.get("d"))?.id, "d");
 * assert.equal((await cursor.get("b"))?.id, "b"); // out of order: still in the window
 * kv.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class RecordCursor<E, T> implements RecordLookup<T> {
  readonly #opts: CursorOptions<E, T>;
  readonly #it: AsyncIterator<Deno.KvEntry<E>>;
  /**
   * The window: ids (ascending) and values read so far and not yet let go; the last group may
   * be incomplete. Every record above `#after` up to the window's last id is in it.
   */
  #ids: string[] = [];
  #values: T[] = [];
  /** Where the last lookup landed (lookups mostly move forward). */
  #pos = 0;
  /** The last id let go from the window (undefined: none, the window covers the start). */
  #after: string | undefined;
  #ended = false;
  #filling: Promise<void> | null = null;
  /** Why reading ahead failed (a damaged database): every later read fails with it. */
  #failure: unknown;
  /** The highest id asked. */
  #last: string | undefined;
  /** Items whose records this run dropped, not to be answered from the window. */
  readonly #dropped = new Set<string>();

  constructor(opts: CursorOptions<E, T>) {
    this.#opts = opts;
    this.#it = opts.kv.list<E>({ prefix: opts.prefix }, { batchSize: 1000 })[
      Symbol.asyncIterator
    ]();
    // The first window is read while the run gets ready, beside every other task's.
    this.#prefetch();
  }

  get(id: string): Lookup<T> {
    if (this.#dropped.has(id)) return undefined;
    // Let go of the window below `id`, keeping a stretch behind for items that come late.
    if (this.#last === undefined || compareIds(id, this.#last) > 0) {
      this.#last = id;
      this.#trim();
    }
    // Below the window: read on its own.
    if (this.#after !== undefined && compareIds(id, this.#after) <= 0) return this.#single(id);
    const found = this.#find(id);
    if (found !== null) return found.value;
    return this.#fill().then(() => this.get(id));
  }

  delete(id: string): void {
    this.#dropped.add(id);
  }

  /** `id`'s value from the window; `null` when the window does not reach past it yet. */
  #find(id: string): { value: T | undefined } | null {
    const ids = this.#ids;
    const n = ids.length;
    // A group at the window's end may go on in the entries not read yet.
    const complete = this.#ended || !this.#opts.grouped ? n : n - 1;
    if (complete <= 0 || compareIds(id, ids[complete - 1]) > 0) {
      return this.#ended ? { value: undefined } : null;
    }
    let i = Math.min(this.#pos, complete - 1);
    if (compareIds(ids[i], id) <= 0) {
      // Forward from the last lookup: the common case of items in order.
      while (i + 1 < complete && compareIds(ids[i + 1], id) <= 0) i++;
    } else {
      let lo = 0;
      let hi = i;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (compareIds(ids[mid], id) < 0) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    this.#pos = i;
    // Read on ahead while the window still lasts, so items in order never wait for it.
    if (!this.#ended && this.#filling === null && complete - i < WINDOW) this.#prefetch();
    return { value: ids[i] === id ? this.#values[i] : undefined };
  }

  /** Starts reading the next window; a failure is thrown to the next lookup that needs it. */
  #prefetch(): void {
    this.#fill().catch((e) => this.#failure ??= e);
  }

  /** Lets go of the window's entries more than a window below the highest id asked. */
  #trim(): void {
    const ids = this.#ids;
    if (ids.length < 3 * WINDOW) return;
    let keep = this.#pos;
    while (keep < ids.length && compareIds(ids[keep], this.#last!) < 0) keep++;
    const drop = keep - WINDOW;
    if (drop < WINDOW) return;
    this.#after = ids[drop - 1];
    ids.splice(0, drop);
    this.#values.splice(0, drop);
    this.#pos = Math.max(0, this.#pos - drop);
  }

  /** Reads the next window of entries (one read at a time). */
  #fill(): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return this.#filling ??= this.#read().finally(() => this.#filling = null);
  }

  async #read(): Promise<void> {
    const { grouped, adapt } = this.#opts;
    let n = 0;
    while (n < WINDOW) {
      const next = await this.#it.next();
      if (next.done) {
        this.#ended = true;
        break;
      }
      const id = next.value.key[2] as string;
      let value = adapt ? adapt(id, next.value.value) : next.value.value;
      if (value instanceof Promise) value = await value;
      n++;
      const at = this.#ids.length - 1;
      if (grouped && at >= 0 && this.#ids[at] === id) {
        (this.#values[at] as unknown as E[]).push(value);
        continue;
      }
      this.#ids.push(id);
      this.#values.push((grouped ? [value] : value) as T);
    }
  }

  /** Reads item `id`'s record(s) on their own (an item asked out of order). */
  async #single(id: string): Promise<T | undefined> {
    const { kv, prefix, grouped, adapt } = this.#opts;
    const out: E[] = [];
    if (!grouped) {
      const e = await kv.get<E>([...prefix, id]);
      if (e.value !== null) out.push(e.value);
    } else {
      for await (const e of kv.list<E>({ prefix: [...prefix, id] })) out.push(e.value);
    }
    if (adapt) { for (let i = 0; i < out.length; i++) out[i] = await adapt(id, out[i]); }
    if (out.length === 0) return undefined;
    return (grouped ? out : out[0]) as T;
  }
}

/**
 * The record journal: every batch of action records (and the key components and config slices
 * `explain` needs) is also written as a small file under `<cache>/journal/` before it is
 * committed to the record database, so that database is an index that can be rebuilt — as
 * Bazel's on-disk action cache is — when it is truncated, overwritten or deleted. `verify
 * --repair` replays the journal; `gc` compacts it into one snapshot.
 *
 * Each file is written to a temp name and renamed, so a reader never sees it half-written; a
 * batch that deletes records is fsynced first (the deletion must survive whatever happens to the
 * database), while new records are not (a batch lost to a power cut only reruns, and the
 * replay skips a file the cut left torn). File names sort in writing order:
 * `<ms since epoch, 15 digits>-<pid>-<sequence, 6 digits>.jsonl`.
 * A file's first line is `{"format":"latentforge-journal/1"}`; each further line is one
 * mutation, `[key, value]` for a set or `[key]` for a delete.
 *
 * @module
 */
import { join } from "node:path";
import { fsyncDir, writeFileAtomic } from "./objects.ts";
import { JOURNALED_KEYS } from "./record_keys.ts";

/**
 * Record prefixes the journal keeps: what a run needs to find its cached work again (action
 * records, key components, config slices, the files tasks used, objects' other names) and to
 * publish it as it was (the facts of the run that built it).
 */
export const JOURNALED = JOURNALED_KEYS;

const FORMAT = JSON.stringify({ format: "latentforge-journal/1" });
const NAME = /^\d{15}-\d+-\d{6}\.jsonl$/;

/** One set (`value` present) or delete of a record. */
export interface JournalEntry {
  key: Deno.KvKey;
  value?: unknown;
}

/** Appends batches of record mutations to `<cache>/journal/`. */
export class Journal {
  readonly dir: string;
  #seq = 0;
  #made = false;

  constructor(cacheDir: string) {
    this.dir = join(cacheDir, "journal");
  }

  /**
   * Writes the journaled part of a batch durably (nothing when it holds none).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { KEYS } from "./record_keys.ts";
   *
   * const cache = await Deno.makeTempDir();
   * await new Journal(cache).append([
   *   { key: KEYS.alias("md5:0cc175b9c0f1b6a831c399e269772661"), value: { digest: "ab" } },
   * ]);
   * assert.equal((await replayJournal(cache)).size, 1);
   * await Deno.remove(cache, { recursive: true });
   * ```
   */
  async append(batch: JournalEntry[]): Promise<void> {
    const kept = batch.filter((m) => JOURNALED.has(String(m.key[0])));
    if (kept.length === 0) return;
    if (!this.#made) {
      await Deno.mkdir(this.dir, { recursive: true });
      this.#made = true;
    }
    const seq = String(this.#seq++).padStart(6, "0");
    const name = `${String(Date.now()).padStart(15, "0")}-${Deno.pid}-${seq}.jsonl`;
    const deletes = kept.some((m) => m.value === undefined);
    await writeFile(this.dir, name, lines(kept), { durable: deletes });
  }

  /**
   * Starts the journal of a database that has records but no journal yet (one an earlier
   * latentforge wrote, or migrated from an older format) with a snapshot of its records.
   */
  async start(kv: Deno.Kv): Promise<void> {
    if ((await journalFiles(this.dir)).length > 0) return;
    let any = false;
    for (const prefix of JOURNALED) {
      for await (const _ of kv.list({ prefix: [prefix] }, { limit: 1 })) any = true;
    }
    if (any) await this.compact(entriesOf(kv));
  }

  /**
   * Replaces every journal file written so far with one snapshot of `current` (the live
   * records), written first, so a kill at any point leaves a journal that replays to them.
   */
  async compact(current: AsyncIterable<JournalEntry>): Promise<{ files: number }> {
    const before = await journalFiles(this.dir);
    const entries: JournalEntry[] = [];
    for await (const e of current) if (JOURNALED.has(String(e.key[0]))) entries.push(e);
    await Deno.mkdir(this.dir, { recursive: true });
    const seq = String(this.#seq++).padStart(6, "0");
    await writeFile(
      this.dir,
      `${String(Date.now()).padStart(15, "0")}-${Deno.pid}-${seq}.jsonl`,
      lines(entries),
      { durable: true },
    );
    for (const f of before) await Deno.remove(join(this.dir, f));
    if (before.length) await fsyncDir(this.dir);
    return { files: before.length };
  }
}

/**
 * Every journaled record of a database, as entries.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KEYS } from "./record_keys.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const kv = await Deno.openKv(`${cache}/records.sqlite3`);
 * await kv.set(KEYS.alias("md5:0cc175b9c0f1b6a831c399e269772661"), { digest: "ab".repeat(32) });
 * await kv.set(KEYS.lease, { pid: 1 }); // not journaled: nothing to rebuild
 * const entries = await Array.fromAsync(entriesOf(kv));
 * assert.deepEqual(entries.map((e) => e.key), [["alias", "md5:0cc175b9c0f1b6a831c399e269772661"]]);
 * kv.close();
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function* entriesOf(kv: Deno.Kv): AsyncGenerator<JournalEntry> {
  for (const prefix of JOURNALED) {
    for await (const e of kv.list({ prefix: [prefix] }, { batchSize: 1000 })) {
      yield { key: e.key, value: e.value };
    }
  }
}

/** Journal file names in writing order (none when there is no journal). */
export async function journalFiles(dir: string): Promise<string[]> {
  try {
    const names = (await Array.fromAsync(Deno.readDir(dir)))
      .filter((e) => e.isFile && NAME.test(e.name)).map((e) => e.name);
    return names.sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/**
 * The records the journal of a cache replays to: key (JSON text) → latest set, deletes applied.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KEYS } from "./record_keys.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const journal = new Journal(cache);
 * await journal.append([{ key: KEYS.alias("md5:0cc175b9c0f1b6a831c399e269772661"), value: { digest: "ab" } }]);
 * await journal.append([{ key: KEYS.alias("md5:0cc175b9c0f1b6a831c399e269772661") }]); // deleted
 * assert.equal((await replayJournal(cache)).size, 0);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function replayJournal(cacheDir: string): Promise<Map<string, JournalEntry>> {
  const dir = join(cacheDir, "journal");
  const out = new Map<string, JournalEntry>();
  for (const name of await journalFiles(dir)) {
    const batch = parseBatch(await Deno.readTextFile(join(dir, name)));
    // A batch of new records a power cut left torn only reruns those actions.
    if (batch === null) continue;
    for (const { key, value } of batch) {
      const id = JSON.stringify(key);
      if (value === undefined) out.delete(id);
      else out.set(id, { key, value });
    }
  }
  return out;
}

/** The mutations of one journal file, or null when it is not whole (torn by a power cut). */
function parseBatch(text: string): JournalEntry[] | null {
  const rows = text.split("\n");
  if (rows[0] !== FORMAT || rows[rows.length - 1] !== "") return null;
  const out: JournalEntry[] = [];
  for (const row of rows.slice(1, -1)) {
    try {
      const parsed = JSON.parse(row) as [Deno.KvKey, unknown?];
      out.push(parsed.length === 1 ? { key: parsed[0] } : { key: parsed[0], value: parsed[1] });
    } catch (e) {
      // A line cut short by a power cut: the file is not whole.
      if (!(e instanceof SyntaxError)) throw e;
      return null;
    }
  }
  return out;
}

function lines(entries: JournalEntry[]): Uint8Array {
  const rows = entries.map((e) =>
    JSON.stringify(e.value === undefined ? [e.key] : [e.key, e.value])
  );
  return new TextEncoder().encode([FORMAT, ...rows].join("\n") + "\n");
}

/** A journal file, written to a dotted temp name (which a replay never reads) and renamed. */
async function writeFile(
  dir: string,
  name: string,
  bytes: Uint8Array,
  { durable }: { durable: boolean },
): Promise<void> {
  await writeFileAtomic(join(dir, name), bytes, { tempPath: join(dir, `.${name}.tmp`), durable });
}

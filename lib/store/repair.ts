/**
 * Rebuilding a damaged record database (`verify --repair`): the damaged file is set aside
 * (`records.sqlite3.damaged-<time>`, never deleted), a new one is filled from the journal, and
 * every action record whose objects are all still in the store is restored — so a repaired
 * cache does not recompute what it still holds. Records whose objects are gone are left out:
 * those actions rerun. Run history and failures, which the journal does not keep, are copied
 * from the damaged file as far as it still reads.
 *
 * A database that opens and passes SQLite's page check may still have lost records to damage
 * that check cannot see; records the journal holds but the database lacks are restored too.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { statOrNull } from "../base/fs.ts";
import { JOURNALED, type JournalEntry, replayJournal } from "./journal.ts";
import type { ObjectStore } from "./objects.ts";
import { checkRecordsFile, checkRecordsPages, RECORDS_FILE } from "./records_file.ts";
import type { ActionRecord, AliasRecord } from "./records.ts";
import { SystemicFault } from "./systemic.ts";
import { isUnder, KEYS } from "./record_keys.ts";

/** What the record database looks like. */
export interface RecordsDiagnosis {
  /** What is wrong with the file itself (empty when it is sound). */
  problems: string[];
  /** Records the journal holds that the database lacks or holds differently. */
  lost: number;
}

/** What {@link repairRecords} did. */
export interface RepairResult {
  diagnosis: RecordsDiagnosis;
  /** Where the damaged file was moved (when it was). */
  setAside?: string;
  /** Action records restored, per task. */
  restored: Record<string, number>;
  /** Action records not restored because an object they name is gone, per task: they rerun. */
  rerun: Record<string, number>;
  /** Key components, config slices and model inputs restored. */
  components: number;
  /** Run history and failure records copied from the damaged file. */
  copied: number;
}

/** Prefixes the journal does not keep but the damaged file may still give. */
const COPIED = [KEYS.runs, KEYS.lastRuns, KEYS.failures(), KEYS.schedules, KEYS.fileDigests];

/**
 * Checks the record database of a cache: its file (empty, overwritten, truncated), SQLite's
 * page check, and whether it holds every record the journal does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRecords } from "./records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * (await openRecords(cache)).close();
 * assert.deepEqual(await diagnoseRecords(cache), { problems: [], lost: 0 });
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function diagnoseRecords(cacheDir: string): Promise<RecordsDiagnosis> {
  const problems: string[] = [];
  try {
    await checkRecordsFile(cacheDir);
  } catch (e) {
    if (!(e instanceof SystemicFault)) throw e;
    problems.push(e.found);
  }
  const exists = (await statOrNull(join(cacheDir, RECORDS_FILE))) !== null;
  if (problems.length === 0 && exists) problems.push(...checkRecordsPages(cacheDir));
  if (problems.length > 0) return { problems, lost: 0 };
  const journal = await replayJournal(cacheDir);
  if (journal.size === 0) return { problems, lost: 0 };
  const kv = await Deno.openKv(join(cacheDir, RECORDS_FILE));
  try {
    return { problems, lost: (await lostEntries(kv, journal)).length };
  } finally {
    kv.close();
  }
}

/**
 * Rebuilds the record database of `store`'s cache from its journal, as the module describes;
 * a sound database only gets back the records it lost.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "./objects.ts";
 * import { KEYS } from "./record_keys.ts";
 * import { openRecords } from "./records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const records = await openRecords(cache);
 * await records.putAliases([["md5:0cc175b9c0f1b6a831c399e269772661", await store.put(new Uint8Array([97]))]]);
 * records.close();
 * await Deno.remove(`${cache}/records.sqlite3`); // lost; the journal still holds the alias
 * const r = await repairRecords(store);
 * const kv = await Deno.openKv(`${cache}/records.sqlite3`);
 * assert.ok((await kv.get(KEYS.alias("md5:0cc175b9c0f1b6a831c399e269772661"))).value);
 * assert.deepEqual(r.rerun, {});
 * kv.close();
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function repairRecords(store: ObjectStore): Promise<RepairResult> {
  const cacheDir = store.root;
  const diagnosis = await diagnoseRecords(cacheDir);
  const result: RepairResult = { diagnosis, restored: {}, rerun: {}, components: 0, copied: 0 };
  const file = resolve(cacheDir, RECORDS_FILE);
  const journal = await replayJournal(cacheDir);
  let keep: JournalEntry[] = [];
  if (diagnosis.problems.length > 0) {
    const stamp = new Date().toISOString().replaceAll(":", "-");
    const setAside = `${file}.damaged-${stamp}`;
    const there = (await statOrNull(file)) !== null;
    if (there) {
      await Deno.rename(file, setAside);
      result.setAside = setAside;
    }
    for (const suffix of ["-wal", "-shm"]) {
      await Deno.rename(`${file}${suffix}`, `${setAside}${suffix}`).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
    }
    if (there) keep = await readable(setAside);
  }
  const kv = await Deno.openKv(file);
  try {
    const entries = diagnosis.problems.length > 0
      ? [...journal.values()]
      : await lostEntries(kv, journal);
    const restore: JournalEntry[] = [];
    for (const e of entries) {
      const task = String(e.key[1]);
      if (isUnder(e.key, KEYS.aliases)) {
        // Another name of an object: worth keeping only while the object is there.
        if (await store.has((e.value as AliasRecord).digest)) restore.push(e);
        continue;
      }
      const current = isUnder(e.key, KEYS.actions());
      if (!current && !isUnder(e.key, KEYS.supersededAll())) {
        restore.push(e);
        result.components++;
        continue;
      }
      const outputs = Object.values((e.value as ActionRecord).objects ?? {});
      const whole = (await Promise.all(outputs.map((d) => store.has(d)))).every(Boolean);
      if (whole) restore.push(e);
      if (!current) continue;
      const tally = whole ? result.restored : result.rerun;
      tally[task] = (tally[task] ?? 0) + 1;
    }
    result.copied = keep.length;
    const all = [...keep, ...restore];
    for (let i = 0; i < all.length; i += 500) {
      const op = kv.atomic();
      for (const e of all.slice(i, i + 500)) op.set(e.key, e.value);
      const res = await op.commit();
      if (!res.ok) throw new Error(`restoring records into ${file}: a batch commit failed`);
    }
  } finally {
    kv.close();
  }
  return result;
}

/** Journal records the database lacks or holds differently. */
async function lostEntries(
  kv: Deno.Kv,
  journal: Map<string, JournalEntry>,
): Promise<JournalEntry[]> {
  const have = new Map<string, string>();
  for (const prefix of JOURNALED) {
    for await (const e of kv.list({ prefix: [prefix] }, { batchSize: 1000 })) {
      have.set(JSON.stringify(e.key), JSON.stringify(e.value));
    }
  }
  return [...journal].filter(([id, e]) => have.get(id) !== JSON.stringify(e.value))
    .map(([, e]) => e);
}

/** What the damaged file still gives of the records the journal does not keep. */
async function readable(file: string): Promise<JournalEntry[]> {
  const out: JournalEntry[] = [];
  let kv: Deno.Kv;
  try {
    kv = await Deno.openKv(file);
  } catch (e) {
    // The file was set aside for being damaged: SQLite refusing it is that damage, whatever its
    // words, and leaves nothing to salvage. A refused permission is not damage.
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) throw e;
    return out;
  }
  try {
    for (const prefix of COPIED) {
      try {
        for await (const e of kv.list({ prefix })) {
          out.push({ key: e.key, value: e.value });
        }
      } catch (e) {
        // The damage reached this part: what was read before it is kept.
        if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
          throw e;
        }
      }
    }
  } finally {
    kv.close();
  }
  return out;
}

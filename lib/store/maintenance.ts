/**
 * Store upkeep: `gc` deletes objects no kept run reaches and compacts the record journal;
 * `verify` re-hashes every object, quarantines the corrupt ones and deletes every record built
 * from a corrupt or missing object, directly or downstream, so the next run rebuilds exactly
 * those.
 *
 * @module
 */
import { join } from "node:path";
import { readDirOrNull, readTextOrNull, removeIfPresent } from "../base/fs.ts";
import { hashFile, type ObjectStore } from "./objects.ts";
import { checkRecordsPages } from "./records_file.ts";
import type { ActionRecord, Records, RunRecord } from "./records.ts";
import { invalidateFrom, listActions } from "./invalidate.ts";

/** What `gc` did (or, with `dryRun`, would do). */
export interface GcResult {
  keptRuns: number[];
  objectsKept: number;
  objectsDeleted: number;
  bytesFreed: number;
  recordsPruned: number;
  tempFilesRemoved: number;
  /** Journal files replaced by one snapshot. */
  journalFilesCompacted: number;
}

const DIGEST = /^[0-9a-f]{64}$/;

/**
 * Deletes every object that neither a current record, a record of the last `keepRuns`
 * successful runs, a checkpoint, nor a recorded model input reaches.
 */
export async function collectGarbage(
  store: ObjectStore,
  records: Records,
  { keepRuns = 3, dryRun = false }: { keepRuns?: number; dryRun?: boolean } = {},
): Promise<GcResult> {
  const runs = (await records.runs()).filter((r: RunRecord) => r.status === "ok");
  const kept = runs.slice(0, keepRuns).map((r) => r.id);
  const roots = new Set<string>();
  const addRecord = (rec: ActionRecord) => {
    for (const d of Object.values(rec.objects)) roots.add(d);
  };
  const prune: Deno.KvKey[] = [];
  for await (const { key, record, replacedBy } of records.allActions()) {
    // A superseded record was current from the run that made it until the run that replaced it.
    if (replacedBy === undefined || kept.some((k) => record.run <= k && k < replacedBy)) {
      addRecord(record);
    } else {
      prune.push(key);
    }
  }
  for (const d of await records.fileDigests()) if (DIGEST.test(d)) roots.add(d);
  for await (const path of walkFiles(join(store.root, "checkpoints"))) {
    if (path.includes(".tmp-")) {
      if (!dryRun) await removeIfPresent(path);
      continue;
    }
    const digest = await readDigestFile(path);
    if (DIGEST.test(digest)) roots.add(digest);
  }
  // Results of remote workers not imported yet: what they produced (and the object holding an
  // earlier result file's result).
  for await (const path of walkFiles(join(store.root, "results"))) {
    for (const d of await resultObjects(store, path)) roots.add(d);
  }
  const result: GcResult = {
    keptRuns: kept,
    objectsKept: 0,
    objectsDeleted: 0,
    bytesFreed: 0,
    recordsPruned: prune.length,
    tempFilesRemoved: 0,
    journalFilesCompacted: 0,
  };
  const stored = new Set<string>();
  for await (const obj of store.list()) {
    if (roots.has(obj.digest)) {
      result.objectsKept++;
      stored.add(obj.digest);
      continue;
    }
    result.objectsDeleted++;
    result.bytesFreed += obj.size;
    if (!dryRun) await store.remove(obj.digest);
  }
  // Temp files are leftovers of interrupted writes: gc holds the lease, so nobody is writing.
  // So are the progress logs of remote waves whose coordinator was killed.
  for (const dir of [store.tmpDir, join(store.root, "waves")]) {
    for await (const path of walkFiles(dir)) {
      result.tempFilesRemoved++;
      if (!dryRun) await removeIfPresent(path);
    }
  }
  if (!dryRun) await removeIfPresent(join(store.root, "waves"), { recursive: true });
  if (!dryRun) {
    await records.deleteKeys(prune);
    // Aliases of objects no longer stored: those deleted here, and those announced for an
    // object a killed run never stored (see ItemContext.announceAlias).
    await records.dropAliases((d) => !stored.has(d));
    // The journal only grows between compactions: one snapshot of the live records replaces
    // it — unless the database is damaged, when the journal is what it will be rebuilt from.
    if (checkRecordsPages(store.root).length === 0) {
      for await (const path of walkFiles(records.journal.dir)) {
        if (path.endsWith(".tmp")) await Deno.remove(path);
      }
      result.journalFilesCompacted = await records.compactJournal();
    }
  }
  return result;
}

/** An object a record names that is not in the store. */
export interface MissingObject {
  digest: string;
  /** The records naming it: `task item`. */
  neededBy: string[];
}

/** What `verify` found. */
export interface VerifyResult {
  checked: number;
  bytes: number;
  corrupt: { digest: string; quarantinedTo: string }[];
  missing: MissingObject[];
  /** Records deleted so the next run rebuilds them: directly from a bad object, or downstream. */
  recordsInvalidated: number;
  /** Invalidated records per task. */
  invalidated: Record<string, number>;
}

/** Options of {@link verifyStore}. */
export interface VerifyOptions {
  /** Called after each object is hashed. */
  onProgress?: (checked: number) => void;
  /**
   * The tasks each task reads (the graph). With it, an aggregate action downstream of a rebuilt
   * per-item action is rebuilt too; without it only digest links are followed. Default none.
   */
  deps?: Map<string, string[]>;
}

/**
 * Re-hashes every object; a corrupt one is moved to `quarantine/`. Every record naming a
 * corrupt or missing object is deleted, and so is every record built from such a record,
 * directly or downstream (through the digests records keep of their inputs, and through the
 * graph for aggregate tasks), so the next run rebuilds exactly those.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "./objects.ts";
 * import { KEYS } from "./record_keys.ts";
 * import { openRecords } from "./records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const [store, records] = [new ObjectStore(cache), await openRecords(cache)];
 * const latent = await store.put(new TextEncoder().encode("a latent"));
 * const writer = records.writer();
 * writer.set(KEYS.action("optimize", "00017"), {
 *   key: "k", taskHash: "t", inputs: {}, objects: { latent }, meta: null, digest: "d", run: 1, ms: 1,
 * });
 * await writer.flush();
 * await Deno.remove(store.path(latent)); // lost
 * const r = await verifyStore(store, records, { deps: new Map([["package", ["optimize"]]]) });
 * assert.deepEqual([r.corrupt.length, r.missing.length, r.recordsInvalidated], [0, 1, 1]);
 * records.close();
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function verifyStore(
  store: ObjectStore,
  records: Records,
  { onProgress, deps = new Map() }: VerifyOptions = {},
): Promise<VerifyResult> {
  const result: VerifyResult = {
    checked: 0,
    bytes: 0,
    corrupt: [],
    missing: [],
    recordsInvalidated: 0,
    invalidated: {},
  };
  const present = new Set<string>();
  for await (const obj of store.list()) {
    const actual = await hashFile(obj.path);
    result.checked++;
    result.bytes += obj.size;
    onProgress?.(result.checked);
    if (actual === obj.digest) {
      present.add(obj.digest);
      continue;
    }
    const to = await store.quarantine(obj.digest);
    if (to) result.corrupt.push({ digest: obj.digest, quarantinedTo: to });
  }
  const all = await listActions(records);
  // Objects that are gone: quarantined just now, or missing though a record names them.
  const bad = new Set<string>(result.corrupt.map((c) => c.digest));
  const missing = new Map<string, string[]>();
  for (const { key, record, current } of all) {
    for (const d of Object.values(record.objects)) {
      if (present.has(d)) continue;
      if (current && !bad.has(d)) {
        missing.set(d, [...missing.get(d) ?? [], `${String(key[1])} ${String(key[2])}`]);
      }
    }
  }
  for (const { record } of all) {
    for (const d of Object.values(record.objects)) if (!present.has(d)) bad.add(d);
  }
  result.missing = [...missing].map(([digest, neededBy]) => ({ digest, neededBy }));
  const invalidated = await invalidateFrom(records, bad, { deps, all });
  result.invalidated = invalidated.byTask;
  result.recordsInvalidated = invalidated.records;
  await records.dropAliases((d) => bad.has(d));
  return result;
}

/**
 * The digest a checkpoint or result file names ("" when the file went between the listing and
 * the read: a finished action drops its checkpoint, an import its result).
 */
/** The objects a result file of a remote worker keeps alive (none for an unreadable one). */
async function resultObjects(store: ObjectStore, path: string): Promise<string[]> {
  const text = (await readTextOrNull(path) ?? "").trim();
  let result: { output?: { objects: Record<string, string> } };
  const holder: string[] = [];
  if (DIGEST.test(text)) {
    if (!(await store.has(text))) return [];
    holder.push(text);
    result = await store.getJson(text);
  } else {
    try {
      result = JSON.parse(text);
    } catch {
      return [];
    }
  }
  return [...holder, ...Object.values(result?.output?.objects ?? {})];
}

async function readDigestFile(path: string): Promise<string> {
  return (await readTextOrNull(path) ?? "").trim();
}

async function* walkFiles(dir: string): AsyncGenerator<string> {
  for (const entry of await readDirOrNull(dir) ?? []) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walkFiles(path);
    else if (entry.isFile) yield path;
  }
}

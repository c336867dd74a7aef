/**
 * Store upkeep: `gc` deletes objects no kept run reaches, `verify` re-hashes every object and
 * quarantines the corrupt ones so their records become cache misses.
 *
 * @module
 */
import { join } from "node:path";
import { hashFile, type ObjectStore } from "./objects.ts";
import type { ActionRecord, Records, RunRecord } from "./records.ts";

/** What `gc` did (or, with `dryRun`, would do). */
export interface GcResult {
  keptRuns: number[];
  objectsKept: number;
  objectsDeleted: number;
  bytesFreed: number;
  recordsPruned: number;
  tempFilesRemoved: number;
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
      if (!dryRun) await Deno.remove(path).catch(() => {});
      continue;
    }
    const digest = (await Deno.readTextFile(path).catch(() => "")).trim();
    if (DIGEST.test(digest)) roots.add(digest);
  }
  // Results of remote workers not imported yet: the result object and what it produced.
  for await (const path of walkFiles(join(store.root, "results"))) {
    const digest = (await Deno.readTextFile(path).catch(() => "")).trim();
    if (!DIGEST.test(digest) || !(await store.has(digest))) continue;
    roots.add(digest);
    const result = await store.getJson<{ output?: { objects: Record<string, string> } }>(digest);
    for (const d of Object.values(result.output?.objects ?? {})) roots.add(d);
  }
  const result: GcResult = {
    keptRuns: kept,
    objectsKept: 0,
    objectsDeleted: 0,
    bytesFreed: 0,
    recordsPruned: prune.length,
    tempFilesRemoved: 0,
  };
  const deleted = new Set<string>();
  for await (const obj of store.list()) {
    if (roots.has(obj.digest)) {
      result.objectsKept++;
      continue;
    }
    result.objectsDeleted++;
    result.bytesFreed += obj.size;
    deleted.add(obj.digest);
    if (!dryRun) await store.remove(obj.digest);
  }
  // Temp files are leftovers of interrupted writes: gc holds the lease, so nobody is writing.
  for await (const path of walkFiles(store.tmpDir)) {
    result.tempFilesRemoved++;
    if (!dryRun) await Deno.remove(path).catch(() => {});
  }
  if (!dryRun) {
    await records.deleteKeys(prune);
    await records.dropAliases((d) => deleted.has(d));
  }
  return result;
}

/** What `verify` found. */
export interface VerifyResult {
  checked: number;
  bytes: number;
  corrupt: { digest: string; quarantinedTo: string }[];
  recordsInvalidated: number;
}

/**
 * Re-hashes every object; a corrupt one is moved to `quarantine/` and every record that points
 * to it is deleted, so the next run recomputes it.
 */
export async function verifyStore(
  store: ObjectStore,
  records: Records,
  { onProgress }: { onProgress?: (checked: number) => void } = {},
): Promise<VerifyResult> {
  const result: VerifyResult = { checked: 0, bytes: 0, corrupt: [], recordsInvalidated: 0 };
  const quarantine = join(store.root, "quarantine");
  const bad = new Set<string>();
  for await (const obj of store.list()) {
    const actual = await hashFile(obj.path);
    result.checked++;
    result.bytes += obj.size;
    onProgress?.(result.checked);
    if (actual === obj.digest) continue;
    await Deno.mkdir(quarantine, { recursive: true });
    const to = join(quarantine, `${obj.digest}.${Date.now()}`);
    await Deno.rename(obj.path, to);
    bad.add(obj.digest);
    result.corrupt.push({ digest: obj.digest, quarantinedTo: to });
  }
  if (bad.size === 0) return result;
  const invalid: Deno.KvKey[] = [];
  for await (const { key, record } of records.allActions()) {
    if (Object.values(record.objects).some((d) => bad.has(d))) invalid.push(key);
  }
  await records.deleteKeys(invalid);
  await records.dropAliases((d) => bad.has(d));
  result.recordsInvalidated = invalid.length;
  return result;
}

async function* walkFiles(dir: string): AsyncGenerator<string> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walkFiles(path);
    else if (entry.isFile) yield path;
  }
}

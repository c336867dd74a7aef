/**
 * Remote execution of per-item tasks: the coordinator writes a wave of actions as a work list
 * object in the shared store, an executor (Slurm) runs shards of it with `worker`, and each
 * worker writes one result object per item plus a small result file naming it. Everything a
 * worker needs is in the work list and the store: an action runs from its key's inputs alone.
 *
 * @module
 */
import { join } from "node:path";
import type { ObjectStore } from "../store/objects.ts";
import { writeFileAtomic } from "../store/objects.ts";
import type { KeyComponents, Output } from "../store/records.ts";
import type { Json, Log } from "./task.ts";

/** One action of a wave. */
export interface WaveWork {
  id: string;
  key: string;
  comps: KeyComponents;
  inputs: Record<string, Output>;
  params?: Json;
}

/** A wave of actions of one task, stored as a JSON object. */
export interface WorkList {
  format: "latentforge-work/1";
  task: string;
  /** Hash of the task's version, source and config slice on the coordinator. */
  prefix: string;
  /** The full config the coordinator validated. */
  config: unknown;
  /** Task-level inputs (e.g. model digests) the coordinator keyed the actions with. */
  taskInputs: Record<string, string>;
  works: WaveWork[];
}

/** One action's result as a worker stores it. */
export interface WorkResult {
  id: string;
  key: string;
  output?: Output;
  error?: { name: string; message: string; retryable: boolean };
  ms: number;
  host: string;
}

/** Runs waves of actions somewhere else. */
export interface Executor {
  /** Shown in logs ("slurm"). */
  name: string;
  /** Tasks it runs; others stay local. */
  tasks: string[];
  /** Runs a stored work list; calls `imported` as results appear; resolves when all are in. */
  runWave(wave: {
    task: string;
    listDigest: string;
    list: WorkList;
    store: ObjectStore;
    signal: AbortSignal;
    log: Log;
    /** Imports every result present now; returns the ids that still have none. */
    importResults(): Promise<string[]>;
  }): Promise<void>;
}

/** The directory where the results of a work list appear. */
export function resultsDir(cacheDir: string, listDigest: string): string {
  return join(cacheDir, "results", listDigest);
}

/** Stores one result: the result object first, then the file that names it (atomically). */
export async function writeResult(
  store: ObjectStore,
  listDigest: string,
  result: WorkResult,
): Promise<void> {
  const digest = await store.putJson(result);
  await store.syncDirs();
  const dir = resultsDir(store.root, listDigest);
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(join(dir, encodeURIComponent(result.id)), new TextEncoder().encode(digest));
}

/** Reads the results present for a work list, skipping ids already seen. */
export async function readResults(
  store: ObjectStore,
  listDigest: string,
  seen: Set<string>,
): Promise<WorkResult[]> {
  const dir = resultsDir(store.root, listDigest);
  const out: WorkResult[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return out;
    throw e;
  }
  for (const entry of entries) {
    if (!entry.isFile || entry.name.includes(".tmp-")) continue;
    const id = decodeURIComponent(entry.name);
    if (seen.has(id)) continue;
    const digest = (await Deno.readTextFile(join(dir, entry.name))).trim();
    out.push(await store.getJson<WorkResult>(digest));
  }
  return out;
}

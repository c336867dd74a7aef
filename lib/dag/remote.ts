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
import type { CodeIdentity, KeyComponents, Output } from "../store/records.ts";
import type { Json, Log } from "./task.ts";

/** One action of a wave. */
export interface WaveWork {
  id: string;
  key: string;
  comps: KeyComponents;
  inputs: Record<string, Output>;
  params?: Json;
  extra?: Json;
}

/** The format of work lists (a worker refuses another). */
export const WORK_LIST_FORMAT = "latentforge-work/3";

/** A wave of actions of one task, stored as a JSON object. */
export interface WorkList {
  format: typeof WORK_LIST_FORMAT;
  task: string;
  /** Hash of the task's version, code identity and config slice on the coordinator. */
  taskHash: string;
  /** The coordinator's code identity of the task, so a worker can name what differs. */
  code: CodeIdentity;
  /** The full config the coordinator validated. */
  config: unknown;
  /** The files the task declared (models), as objects in the shared store, by name. */
  files: Record<string, string>;
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

/**
 * Where the result of an action appears: named by task and action key, so a result survives
 * the wave that produced it and a later wave with the same action imports it instead of
 * recomputing.
 */
export function resultPath(cacheDir: string, task: string, key: string): string {
  return join(cacheDir, "results", task, key.slice(0, 2), key);
}

/** Stores one result: the result object first, then the file that names it (atomically). */
export async function writeResult(
  store: ObjectStore,
  task: string,
  result: WorkResult,
): Promise<void> {
  const digest = await store.putJson(result);
  await store.syncDirs();
  const path = resultPath(store.root, task, result.key);
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await writeFileAtomic(path, new TextEncoder().encode(digest));
}

/** Reads the results present for the given action keys, skipping keys already seen. */
export async function readResults(
  store: ObjectStore,
  task: string,
  keys: Iterable<string>,
  seen: Set<string>,
): Promise<WorkResult[]> {
  const wanted = new Map<string, string[]>();
  for (const key of keys) {
    if (seen.has(key)) continue;
    const shard = key.slice(0, 2);
    const list = wanted.get(shard) ?? [];
    list.push(key);
    wanted.set(shard, list);
  }
  const out: WorkResult[] = [];
  for (const [shard, list] of wanted) {
    let present: Set<string>;
    try {
      const dir = join(store.root, "results", task, shard);
      present = new Set((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    for (const key of list) {
      if (!present.has(key)) continue;
      const digest = (await Deno.readTextFile(resultPath(store.root, task, key))).trim();
      out.push(await store.getJson<WorkResult>(digest));
    }
  }
  return out;
}

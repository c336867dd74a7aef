/**
 * Remote execution of per-item tasks: the coordinator writes a wave of actions as a work list
 * in the shared store, an executor (Slurm) runs its shards with `worker`, and each worker
 * writes one result file per item and announces it on its shard's progress log. Everything a worker needs is in the work list and the
 * store: an action runs from its key's inputs alone.
 *
 * A work list is a small header object naming one object per shard; a shard object holds its
 * actions as JSON lines. Neither side holds a wave in memory: the coordinator writes the shards
 * as it reads its spool, a worker reads its own shard line by line, and the coordinator imports
 * the results its workers announce by their position in the list.
 *
 * @module
 */
import { join } from "node:path";
import type { ObjectStore } from "../store/objects.ts";
import { writeFileAtomic } from "../store/objects.ts";
import type { CodeIdentity, KeyComponents, Output } from "../store/records.ts";
import { readTextOrNull, writeAll } from "../base/fs.ts";
import { readAt } from "../base/lines.ts";
import type { Json, Log } from "./task.ts";

/** One action of a wave: one line of a shard object. */
export interface WaveWork {
  id: string;
  key: string;
  comps: KeyComponents;
  inputs: Record<string, Output>;
  params?: Json;
  extra?: Json;
}

/** The format of work lists (a worker refuses another). */
export const WORK_LIST_FORMAT = "latentforge-work/4";

/** A wave of actions of one task: the header object of a work list. */
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
  /** The shards in order: each an object of JSON lines (one {@link WaveWork} each). */
  shards: { digest: string; count: number }[];
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
  /** How many shards a wave of `items` actions is split into (at least 1). */
  shards(items: number): number;
  /** Runs a stored work list; calls `importResults` as it runs; resolves when all are in. */
  runWave(wave: {
    task: string;
    listDigest: string;
    /** Its number of shards and of actions. */
    shards: number;
    items: number;
    signal: AbortSignal;
    log: Log;
    /** Imports the results the workers announced since the last call. */
    importResults(): Promise<void>;
    /**
     * Imports every result present, announced or not, and says which shards still have actions
     * without one (in ascending order).
     */
    unfinished(): Promise<number[]>;
  }): Promise<void>;
}

/** The executor that runs task `task`'s actions (undefined: they run here). */
export function executorOf(executor: Executor | undefined, task: string): Executor | undefined {
  return executor?.tasks.includes(task) ? executor : undefined;
}

/** What a plan says of a task whose actions an executor runs: how they would be split. */
export interface RemotePlan {
  executor: string;
  /** Actions that would run, and the shards (array tasks) they would be split into. */
  actions: number;
  shards: number;
  /** The shards if the actions that may run do too (when some may). */
  upTo?: number;
}

/**
 * How the actions of task `task` that would run (`run`) and may run (`may`) would go to
 * `executor`, by the same rule a run splits them by; undefined when they stay local or none run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Executor } from "./remote.ts";
 *
 * const slurm = { name: "slurm", tasks: ["encode"], shards: (n: number) => Math.min(16, n) };
 * const executor = slurm as unknown as Executor;
 * assert.deepEqual(remotePlan(executor, "encode", 12, 0), {
 *   executor: "slurm",
 *   actions: 12,
 *   shards: 12,
 * });
 * assert.equal(remotePlan(executor, "encode", 40, 3)?.upTo, 16);
 * assert.equal(remotePlan(executor, "package", 40, 0), undefined);
 * ```
 */
export function remotePlan(
  executor: Executor | undefined,
  task: string,
  run: number,
  may: number,
): RemotePlan | undefined {
  executor = executorOf(executor, task);
  if (!executor || run + may === 0) return undefined;
  const plan: RemotePlan = {
    executor: executor.name,
    actions: run,
    shards: run > 0 ? executor.shards(run) : 0,
  };
  if (may > 0) plan.upTo = executor.shards(run + may);
  return plan;
}

/**
 * Where the result of an action appears: named by task and action key, so a result survives
 * the wave that produced it and a later wave with the same action imports it instead of
 * recomputing.
 */
export function resultPath(cacheDir: string, task: string, key: string): string {
  return join(cacheDir, "results", task, key.slice(0, 2), key);
}

/** Where the workers of a wave announce their results, one log per shard. */
export function progressDir(cacheDir: string, listDigest: string): string {
  return join(cacheDir, "waves", listDigest);
}

/** The progress log of one shard of a wave. */
export function progressPath(cacheDir: string, listDigest: string, shard: number): string {
  return join(progressDir(cacheDir, listDigest), `${shard}.log`);
}

/**
 * Stores one result as its result file (JSON, written atomically and durably); the objects it
 * names are in the store already.
 */
export async function writeResult(
  store: ObjectStore,
  task: string,
  result: WorkResult,
): Promise<void> {
  await store.syncDirs();
  const path = resultPath(store.root, task, result.key);
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(result)));
}

/** The result stored for an action, or null when there is none. */
export async function readResult(
  store: ObjectStore,
  task: string,
  key: string,
): Promise<WorkResult | null> {
  const text = await readTextOrNull(resultPath(store.root, task, key));
  if (text === null) return null;
  // An earlier result file names an object that holds the result.
  const digest = /^([0-9a-f]{64})\s*$/.exec(text)?.[1];
  return digest ? await store.getJson<WorkResult>(digest) : JSON.parse(text) as WorkResult;
}

/**
 * Announces results on a shard's progress log: one line `position key` per action, in the
 * order they finish. The log is a hint for the coordinator, which checks every line against
 * its list and looks for results the log misses (a worker killed between its result and its
 * line) before it calls an action unfinished; so lines are appended without a sync.
 */
export class ProgressLog {
  readonly #path: string;
  #file?: Promise<Deno.FsFile>;
  #chain: Promise<void> = Promise.resolve();
  #first = true;
  readonly #encoder = new TextEncoder();

  constructor(path: string) {
    this.#path = path;
  }

  /** Appends the line of the action at `position` of the shard (in the order called). */
  announce(position: number, key: string): Promise<void> {
    this.#file ??= Deno.mkdir(join(this.#path, ".."), { recursive: true })
      .then(() => Deno.open(this.#path, { append: true, create: true }));
    // A line a killed writer left unfinished is ended first, so it spoils only itself.
    const bytes = this.#encoder.encode(`${this.#first ? "\n" : ""}${position} ${key}\n`);
    this.#first = false;
    this.#chain = this.#chain.then(async () => await writeAll(await this.#file!, bytes));
    return this.#chain;
  }

  /** Waits for the lines announced and closes the log. */
  async close(): Promise<void> {
    await this.#chain;
    if (this.#file) (await this.#file).close();
  }
}

/** Reads the complete lines of a progress log from `offset`: its entries and the new offset. */
export async function readProgress(
  path: string,
  offset: number,
): Promise<{ entries: [number, string][]; offset: number }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { entries: [], offset };
    throw e;
  }
  try {
    const size = (await file.stat()).size;
    if (size <= offset) return { entries: [], offset };
    const bytes = await readAt(file, offset, size - offset);
    // Only lines that are complete: the last one may still be being written.
    const end = bytes.lastIndexOf(10) + 1;
    const entries: [number, string][] = [];
    for (const line of new TextDecoder().decode(bytes.subarray(0, end)).split("\n")) {
      const m = /^(\d+) ([0-9a-f]{64})$/.exec(line);
      if (m) entries.push([Number(m[1]), m[2]]);
    }
    return { entries, offset: offset + end };
  } finally {
    file.close();
  }
}

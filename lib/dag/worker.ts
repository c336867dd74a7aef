/**
 * A remote worker: executes one shard of a stored work list against the shared store and
 * writes a result per item. It reads no KV and holds no lease; everything it needs is in the
 * work list and the objects it names.
 *
 * @module
 */
import { hostname } from "node:os";
import { taskIdentity } from "./task_identity.ts";
import type { ObjectStore } from "../store/objects.ts";
import { configSlice, projectConfig } from "./config.ts";
import type { TaskGraph } from "./graph.ts";
import {
  ProgressLog,
  progressPath,
  resultPath,
  type WaveWork,
  WORK_LIST_FORMAT,
  type WorkList,
  writeResult,
} from "./remote.ts";
import { readLines } from "../base/lines.ts";
import { hashFile } from "../store/objects.ts";
import { FlowGate } from "./flow_gate.ts";
import { CodeReader } from "./code_identity.ts";
import { codeChanges } from "./staleness.ts";
import type {
  ActionResult,
  EachTask,
  ItemContext,
  Log,
  RetryPolicy,
  StoredFile,
  TaskContext,
} from "./task.ts";
import { isAbort } from "../base/abort.ts";
import { statOrNull } from "../base/fs.ts";
import { DEFAULT_RETRY, withRetry } from "./action_retry.ts";
import { itemContext } from "./item_context.ts";
import type { PoolHost, Work } from "./pool.ts";
import { WorkPool } from "./work_pool.ts";

/** Raised when a work list cannot be run by this worker. */
export class WorkerError extends Error {
  override readonly name = "WorkerError";
  /** A bad invocation (exit code 2): nothing was done. */
  readonly exitCode = 2;
}

/** What one worker did. */
export interface WorkerSummary {
  assigned: number;
  alreadyDone: number;
  succeeded: number;
  failed: number;
}

/** Actions a worker queues ahead of those running: it reads its shard as they finish. */
const WORKER_IN_FLIGHT = 1024;

/**
 * Runs shard `index` of the `count` shards of the work list `listDigest`: the actions of that
 * shard that have no result yet (a resubmitted shard skips what a previous attempt finished),
 * reading the shard line by line.
 */
export async function runWorker(
  { graph, store, listDigest, index, count, signal, log, concurrency }: {
    graph: TaskGraph;
    store: ObjectStore;
    listDigest: string;
    index: number;
    count: number;
    signal: AbortSignal;
    log: Log;
    concurrency?: number;
  },
): Promise<WorkerSummary> {
  if (!(index >= 0 && index < count)) {
    throw new WorkerError(`--shard expects i/N with 0 ≤ i < N, found ${index}/${count}`);
  }
  const list = await store.getJson<WorkList>(listDigest);
  if (list.format !== WORK_LIST_FORMAT) {
    throw new WorkerError(
      `object ${listDigest} is not a work list this latentforge reads (expected format ` +
        `${WORK_LIST_FORMAT}, found ${list.format}): run the same latentforge on both`,
    );
  }
  if (list.shards.length !== count) {
    throw new WorkerError(
      `work list ${listDigest} has ${list.shards.length} shards, not ${count} as --shard says`,
    );
  }
  const task = graph.get(list.task);
  if (task.kind !== "each") throw new WorkerError(`task "${task.name}" is not a per-item task`);
  await sameTask(task, list);
  const ctx = await workerContext(task, list, store, signal, log);
  const shard = list.shards[index];
  const summary: WorkerSummary = { assigned: shard.count, alreadyDone: 0, succeeded: 0, failed: 0 };
  if (shard.count === 0) return summary;
  const path = store.path(shard.digest);
  if (!(await statOrNull(path)) || (await hashFile(path)) !== shard.digest) {
    throw new WorkerError(
      `shard ${index} of work list ${listDigest} (object ${shard.digest}) is missing or ` +
        `damaged in the cache ${store.root}`,
    );
  }
  const progress = new ProgressLog(progressPath(store.root, listDigest, index));
  const host = new WorkerHost(task, ctx, summary, progress, concurrency);
  const pool = new WorkPool(host, task);
  try {
    let position = 0;
    for await (const line of readLines(path)) {
      const at = position++;
      const w = JSON.parse(line.text) as WaveWork;
      if (await statOrNull(resultPath(store.root, task.name, w.key))) {
        summary.alreadyDone++;
        await progress.announce(at, w.key);
        continue;
      }
      await host.gate.room(signal);
      if (signal.aborted || pool.fatal !== undefined) break;
      const work: Work = {
        item: { id: w.id, inputs: w.inputs, params: w.params, extra: w.extra },
        key: w.key,
        comps: w.comps,
        attempts: 0,
      };
      host.positions.set(work, at);
      pool.add(work);
    }
    pool.close();
    await pool.drained();
    await host.settled();
  } finally {
    await progress.close();
  }
  if (pool.fatal !== undefined) throw pool.fatal;
  if (task.teardown && host.state) await task.teardown(await host.state);
  return summary;
}

/** The task's context on a worker: the coordinator brought the task's files into the store. */
async function workerContext(
  task: EachTask,
  list: WorkList,
  store: ObjectStore,
  signal: AbortSignal,
  log: Log,
): Promise<TaskContext<unknown>> {
  const files: Record<string, StoredFile> = {};
  for (const [name, digest] of Object.entries(list.files)) {
    const path = store.path(digest);
    const info = await statOrNull(path);
    if (!info) {
      throw new WorkerError(
        `file ${name} of task "${task.name}" (object ${digest}) is not in the cache ${store.root}`,
      );
    }
    files[name] = { digest, size: info.size, path };
  }
  return {
    config: projectConfig(list.config, task.config, task.reads),
    keyed: projectConfig(list.config, task.config),
    store,
    cacheDir: store.root,
    signal,
    log,
    files,
  };
}

/**
 * Checks the worker computes what the coordinator keyed: the same version, config slice and
 * code (its modules and npm packages), naming what differs.
 */
async function sameTask(task: EachTask, list: WorkList): Promise<void> {
  const identity = await taskIdentity(
    task,
    configSlice(list.config, task.config),
    new CodeReader(),
  );
  if (identity.hash === list.taskHash) return;
  const differences = codeChanges(list.code, identity.code.identity).map((r) => r.text);
  if (differences.length === 0) {
    differences.push(`the version (${task.version} here) or the config slice differs`);
  }
  throw new WorkerError(
    `the worker's task "${task.name}" differs from the coordinator's (coordinator → worker: ` +
      `${differences.slice(0, 5).join("; ")}${differences.length > 5 ? "; …" : ""}): run the ` +
      `same latentforge on both`,
  );
}

class WorkerHost implements PoolHost {
  readonly signal: AbortSignal;
  readonly concurrency?: number;
  readonly ctx: TaskContext<unknown>;
  readonly gate = new FlowGate(WORKER_IN_FLIGHT);
  /** The position in the shard of each action queued or running (two items may share a key). */
  readonly positions = new Map<Work, number>();
  readonly #task: EachTask;
  readonly #summary: WorkerSummary;
  readonly #progress: ProgressLog;
  readonly #writes = new Set<Promise<void>>();
  state?: Promise<unknown>;

  constructor(
    task: EachTask,
    ctx: TaskContext<unknown>,
    summary: WorkerSummary,
    progress: ProgressLog,
    concurrency?: number,
  ) {
    this.#task = task;
    this.ctx = ctx;
    this.signal = ctx.signal;
    this.concurrency = concurrency;
    this.#summary = summary;
    this.#progress = progress;
  }

  prepared(): Promise<unknown> {
    return this.state ??= this.#task.prepare
      ? this.#task.prepare(this.ctx).then((p) => p.state)
      : Promise.resolve(undefined);
  }

  retryPolicy(): RetryPolicy {
    return { ...DEFAULT_RETRY, ...this.#task.retry?.(this.ctx.config) };
  }

  itemContext(work: Work): ItemContext<unknown> {
    return itemContext(this.ctx, this.#task.name, work);
  }

  async runItem(work: Work, state: unknown): Promise<void> {
    const started = performance.now();
    try {
      const out = await withRetry(
        this.retryPolicy(),
        work,
        () => this.#task.run!(this.itemContext(work), work.item, state),
        this.signal,
        (_attempt, delayMs, e) => this.onRetry(work, e, delayMs),
      );
      await this.record(work, out, performance.now() - started);
    } catch (e) {
      if (this.signal.aborted && isAbort(e)) return;
      this.recordFailure(work, e, performance.now() - started);
    }
  }

  onRetry(work: Work, e: unknown, delayMs: number): void {
    this.ctx.log(`${work.item.id}: retry ${work.attempts} in ${Math.round(delayMs)} ms: ${e}`);
  }

  async record(work: Work, output: ActionResult, ms: number): Promise<void> {
    for (const d of Object.values(output.objects)) {
      if (!(await this.ctx.store.has(d))) {
        throw new WorkerError(`task returned object ${d} that is not in the store`);
      }
    }
    this.#summary.succeeded++;
    await writeResult(this.ctx.store, this.#task.name, {
      id: work.item.id,
      key: work.key,
      output,
      ms: Math.round(ms),
      host: hostname(),
    });
    await this.#announce(work);
  }

  /** Announces the result of `work` on the shard's progress log. */
  #announce(work: Work): Promise<void> {
    const at = this.positions.get(work)!;
    this.positions.delete(work);
    return this.#progress.announce(at, work.key);
  }

  recordFailure(work: Work, e: unknown, ms: number): void {
    this.#summary.failed++;
    const error = e instanceof Error ? e : new Error(String(e));
    this.ctx.log(`${work.item.id} failed: ${error.message}`);
    const write = writeResult(this.ctx.store, this.#task.name, {
      id: work.item.id,
      key: work.key,
      error: {
        name: error.name,
        message: error.message,
        retryable: (error as { retryable?: boolean }).retryable === true,
      },
      ms: Math.round(ms),
      host: hostname(),
    }).then(() => this.#announce(work));
    this.#writes.add(write);
    write.finally(() => this.#writes.delete(write)).catch(() => {});
  }

  async settled(): Promise<void> {
    await Promise.all(this.#writes);
  }
}

/**
 * The remote pool: hands a task's actions to an executor (Slurm) as one wave once all its
 * items are known, and records the results as the executor imports them. The actions wait in
 * a spool on disk, not in memory, and results are imported against the list (wave_list.ts).
 *
 * @module
 */
import type { ObjectStore } from "../store/objects.ts";
import type { Executor, WorkResult } from "./remote.ts";
import { resultPath } from "./remote.ts";
import type { CodeIdentity } from "../store/records.ts";
import type { ActionResult, EachTask, Log, StoredFile } from "./task.ts";
import type { Pool, Work } from "./pool.ts";
import { WaveList, WaveSpool } from "./wave_list.ts";
import { removeIfPresent } from "../base/fs.ts";
import type { FlowGate } from "./flow_gate.ts";

/** What the remote pool needs from the task it runs. */
export interface RemoteHost {
  readonly signal: AbortSignal;
  readonly store: ObjectStore;
  /** The full config the coordinator validated. */
  readonly config: unknown;
  readonly taskHash: string;
  /** The task's code identity, which the workers check theirs against. */
  readonly code: CodeIdentity;
  readonly files: Record<string, StoredFile>;
  readonly log: Log;
  /** Counts the actions in flight run-wide: those not spooled to disk yet count. */
  readonly gate?: FlowGate;
  record(work: Work, out: ActionResult, ms: number): Promise<void>;
  recordFailure(work: Work, e: unknown, ms: number): void;
  /** Resolves once the records written so far are committed. */
  committed(): Promise<void>;
}

/** Result files are removed this many at a time, once their records are committed. */
const FORGET_BATCH = 4096;

/** Raised for an item an executor returned nothing for. */
export class MissingResultError extends Error {
  override readonly name = "MissingResultError";
}

/** An item that failed on a worker, named as the error it failed with there. */
export class RemoteItemError extends Error {
  override readonly name: string;
  constructor(message: string, name: string) {
    super(message);
    this.name = name;
  }
}

/** Runs a task's actions elsewhere, as one wave. */
export class RemotePool implements Pool {
  readonly host: RemoteHost;
  readonly task: EachTask;
  readonly executor: Executor;
  #spool: WaveSpool;
  readonly #held: Promise<unknown>[] = [];
  /** Keys of results imported whose files are still to be removed. */
  #imported: string[] = [];

  constructor(host: RemoteHost, task: EachTask, executor: Executor) {
    this.host = host;
    this.task = task;
    this.executor = executor;
    this.#spool = new WaveSpool(host.store, host.gate);
  }

  add(work: Work): void {
    this.#spool.add(work);
  }

  close(): void {}

  hold(pending: Promise<unknown>): void {
    this.#held.push(pending);
  }

  /** Runs waves until no action is left: one for what was added, more for what came back. */
  async drained(): Promise<void> {
    try {
      while (!this.host.signal.aborted) {
        await Promise.allSettled(this.#held.splice(0));
        const spool = this.#spool;
        if (spool.size === 0 && this.#held.length === 0) return;
        this.#spool = new WaveSpool(this.host.store, this.host.gate);
        if (spool.size > 0) {
          try {
            await this.#wave(spool);
          } finally {
            await spool.remove();
          }
        }
      }
    } finally {
      await this.#spool.remove();
    }
  }

  async #wave(spool: WaveSpool): Promise<void> {
    const { store } = this.host;
    await spool.flush();
    // Results found while the list is written are not listed: theirs can go at once.
    const list = await WaveList.write(
      store,
      {
        task: this.task.name,
        taskHash: this.host.taskHash,
        code: this.host.code,
        config: this.host.config,
        files: Object.fromEntries(
          Object.entries(this.host.files).map(([name, f]) => [name, f.digest]),
        ),
      },
      spool,
      this.executor.shards(spool.size),
      async (work, result) => {
        await this.#import(work, result);
        this.#imported.push(work.key);
        if (this.#imported.length >= FORGET_BATCH) await this.#forget();
      },
    );
    await this.#forget();
    if (!list) return;
    try {
      // A resubmitted shard skips the actions whose results are stored: they stay until the
      // wave ends.
      await this.executor.runWave({
        task: this.task.name,
        listDigest: list.digest,
        shards: list.header.shards.length,
        items: list.size,
        signal: this.host.signal,
        log: this.host.log,
        importResults: () => list.importAnnounced(),
        unfinished: () => list.unfinished(),
      });
      await list.unfinished();
      if (!this.host.signal.aborted) {
        for await (const work of list.missing()) {
          this.host.recordFailure(
            work,
            new MissingResultError(`${this.executor.name} returned no result for this item`),
            0,
          );
        }
      }
      for await (const key of list.importedKeys()) {
        this.#imported.push(key);
        if (this.#imported.length >= FORGET_BATCH) await this.#forget();
      }
      await this.#forget();
    } finally {
      await list.remove();
    }
  }

  async #import(work: Work, result: WorkResult): Promise<void> {
    if (result.output) return await this.host.record(work, result.output, result.ms);
    const e = new RemoteItemError(
      `${result.error?.message ?? "no error text"} (on ${result.host})`,
      result.error?.name ?? "Error",
    );
    this.host.recordFailure(work, e, result.ms);
  }

  /**
   * Removes the result files of imported actions once their records (or failure records) are
   * committed: a result is kept until a record holds what it says.
   */
  async #forget(): Promise<void> {
    if (this.#imported.length === 0) return;
    const keys = this.#imported;
    this.#imported = [];
    await this.host.committed();
    const { root } = this.host.store;
    for (const key of keys) await removeIfPresent(resultPath(root, this.task.name, key));
  }
}

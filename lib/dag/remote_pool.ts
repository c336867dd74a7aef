/**
 * The remote pool: hands a task's actions to an executor (Slurm) as one wave once all its
 * items are known, and records the results as the executor imports them.
 *
 * @module
 */
import type { ObjectStore } from "../store/objects.ts";
import {
  type Executor,
  readResults,
  resultPath,
  WORK_LIST_FORMAT,
  type WorkList,
} from "./remote.ts";
import type { CodeIdentity } from "../store/records.ts";
import type { ActionResult, EachTask, Log, StoredFile } from "./task.ts";
import type { Pool, Work } from "./pool.ts";
import { removeIfPresent } from "../base/fs.ts";

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
  record(work: Work, out: ActionResult, ms: number): Promise<void>;
  recordFailure(work: Work, e: unknown, ms: number): void;
}

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
  readonly #works: Work[] = [];
  readonly #held: Promise<unknown>[] = [];

  constructor(host: RemoteHost, task: EachTask, executor: Executor) {
    this.host = host;
    this.task = task;
    this.executor = executor;
  }

  add(work: Work): void {
    this.#works.push(work);
  }

  close(): void {}

  hold(pending: Promise<unknown>): void {
    this.#held.push(pending);
  }

  /** Runs waves until no action is left: one for what was added, more for what came back. */
  async drained(): Promise<void> {
    while (!this.host.signal.aborted) {
      await Promise.allSettled(this.#held.splice(0));
      const works = this.#works.splice(0);
      if (works.length === 0 && this.#held.length === 0) return;
      if (works.length > 0) await this.#wave(works);
    }
  }

  async #wave(works: Work[]): Promise<void> {
    const { store } = this.host;
    const list: WorkList = {
      format: WORK_LIST_FORMAT,
      task: this.task.name,
      taskHash: this.host.taskHash,
      code: this.host.code,
      config: this.host.config,
      files: Object.fromEntries(
        Object.entries(this.host.files).map(([name, f]) => [name, f.digest]),
      ),
      works: works.map((w) => ({
        id: w.item.id,
        key: w.key,
        comps: w.comps,
        inputs: w.item.inputs,
        params: w.item.params,
        extra: w.item.extra,
      })),
    };
    const byKey = new Map(works.map((w) => [w.key, w]));
    const seen = new Set<string>();
    const importResults = async () => {
      for (const result of await readResults(store, this.task.name, byKey.keys(), seen)) {
        seen.add(result.key);
        const work = byKey.get(result.key)!;
        if (result.output) await this.host.record(work, result.output, result.ms);
        else {
          const e = new RemoteItemError(
            `${result.error?.message ?? "no error text"} (on ${result.host})`,
            result.error?.name ?? "Error",
          );
          this.host.recordFailure(work, e, result.ms);
        }
      }
      return [...byKey.values()].filter((w) => !seen.has(w.key)).map((w) => w.item.id);
    };
    // Results of an earlier, interrupted wave with the same actions need no recomputing;
    // failures are retried, as they would be locally.
    for (const r of await readResults(store, this.task.name, byKey.keys(), new Set())) {
      if (!r.output) await removeIfPresent(resultPath(store.root, this.task.name, r.key));
    }
    const missing = new Set(await importResults());
    list.works = list.works.filter((w) => missing.has(w.id));
    if (list.works.length === 0) return;
    const listDigest = await store.putJson(list);
    await store.syncDirs();
    await this.executor.runWave({
      task: this.task.name,
      listDigest,
      list,
      store,
      signal: this.host.signal,
      log: this.host.log,
      importResults,
    });
    const left = await importResults();
    if (this.host.signal.aborted) return;
    const byId = new Map(works.map((w) => [w.item.id, w]));
    for (const id of left) {
      this.host.recordFailure(
        byId.get(id)!,
        new MissingResultError(`${this.executor.name} returned no result for this item`),
        0,
      );
    }
  }
}

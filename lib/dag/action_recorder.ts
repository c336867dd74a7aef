/**
 * Writing what actions did: an action record (after checking its objects are in the store),
 * the aliases it names, the superseded record it replaces, or a failure record. Records go
 * through the run's batch writer, which commits only after the objects are durable; aliases
 * are committed at once, after their objects are durable.
 *
 * @module
 */
import {
  type ActionRecord,
  type FailureRecord,
  KEYS,
  type Records,
  type RecordWriter,
} from "../store/records.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { ObjectAliases } from "../store/aliases.ts";
import type { ActionDecider } from "./staleness.ts";
import type { ActionResult } from "./task.ts";
import type { Work } from "./pool.ts";
import { TaskContractError } from "./errors.ts";

/** What the recorder needs from the task it records for. */
export interface RecorderHost {
  readonly name: string;
  readonly taskHash: string;
  readonly decider: ActionDecider;
  readonly run: {
    readonly runId: number;
    readonly writer: RecordWriter;
    readonly aliases: ObjectAliases;
    readonly options: { readonly store: ObjectStore; readonly records: Records };
  };
}

/** Records the actions of one task. */
export class ActionRecorder {
  readonly #host: RecorderHost;

  constructor(host: RecorderHost) {
    this.#host = host;
  }

  /** Records a finished action whose output has digest `digest`. */
  async record(work: Work, result: ActionResult, digest: string, ms: number): Promise<void> {
    const h = this.#host;
    const { id } = work.item;
    const rec: ActionRecord = {
      key: work.key,
      taskHash: h.taskHash,
      inputs: work.comps.inputs,
      objects: result.objects,
      meta: result.meta,
      digest,
      run: h.run.runId,
      ms: Math.round(ms),
    };
    if (work.comps.params !== undefined) rec.params = work.comps.params;
    const objects = Object.values(result.objects);
    for (const d of objects) {
      if (!(await h.run.options.store.has(d))) {
        throw new TaskContractError(
          `task "${h.name}" returned object ${d} that is not in the store`,
        );
      }
    }
    for (const [name, d] of Object.entries(result.aliases ?? {})) {
      if (!objects.includes(d)) {
        throw new TaskContractError(
          `task "${h.name}" named alias ${name} for object ${d}, which is not one of its outputs`,
        );
      }
    }
    const aliases = Object.entries(result.aliases ?? {});
    if (aliases.length) {
      // An alias only says what an object already is, so it can go first, on its own, once the
      // object is durable: a run killed before the action's record still finds the bytes.
      await h.run.options.store.syncDirs();
      await h.run.options.records.putAliases(aliases);
      for (const [name, d] of aliases) h.run.aliases.add(name, d);
    }
    const prev = work.prev;
    if (prev && prev.key !== work.key) {
      h.run.writer.set(KEYS.superseded(h.name, id, h.run.runId), prev);
    }
    h.run.writer.set(KEYS.action(h.name, id), rec);
    if (work.failedBefore) h.run.writer.delete(KEYS.failure(h.name, id));
    // Actions wait for the records' disk rather than pile records up in memory.
    await h.run.writer.room();
  }

  /** Makes a superseded record current again (a cache hit after a revert of `current`). */
  revive(id: string, old: ActionRecord, current: ActionRecord | undefined): void {
    const h = this.#host;
    if (current) h.run.writer.set(KEYS.superseded(h.name, id, h.run.runId), current);
    h.run.writer.set(KEYS.action(h.name, id), old);
  }

  /** Records a failed action with its reason. */
  recordFailure(work: Work, e: unknown, reason: string): void {
    const h = this.#host;
    const rec: FailureRecord = {
      key: work.key,
      reason: reason.slice(0, 4000),
      kind: (e as Error)?.name ?? "Error",
      attempts: work.attempts,
      run: h.run.runId,
      at: new Date().toISOString(),
    };
    h.run.writer.set(KEYS.failure(h.name, work.item.id), rec);
  }
}

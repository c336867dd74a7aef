/**
 * A per-item task's outputs after its items flowed: read back from its records, in id order or
 * one at a time, never held in memory as a whole. The task's state says which items count (the
 * records also hold items of other runs: failed now, or not listed this time). The digest a
 * dependant keys on for them as a whole is hashed as the records stream by.
 *
 * @module
 */
import type { ActionRecord, Output, Records, RecordWriter } from "../store/records.ts";
import type { ItemEntry, ItemOutputs } from "./task.ts";
import type { TaskOutcome } from "./task_state.ts";

/** Where a task's outputs are read from. */
export interface OutputSource {
  readonly name: string;
  readonly records: Records;
  /** Flushed before reading, so this run's records are read. */
  readonly writer: RecordWriter;
  readonly outcome: Pick<TaskOutcome, "ok" | "okCount">;
  /** Tags an output read back with its recorded digest (what dependants key on). */
  remember(out: Output, digest: string): void;
  /**
   * Records a plan found current that the records do not say yet: superseded records a run
   * would make current again (a plan writes nothing), by item.
   */
  readonly overlay?: ReadonlyMap<string, ActionRecord>;
}

/** The task's successful items of this run, read from their records. */
export function taskOutputs(src: OutputSource): ItemOutputs {
  const entry = (id: string, rec: ActionRecord): ItemEntry => {
    const out: Output = { objects: rec.objects, meta: rec.meta };
    src.remember(out, rec.digest);
    return { id, out, key: rec.key, ms: rec.ms };
  };
  return {
    get size() {
      return src.outcome.okCount;
    },
    has: (id) => src.outcome.ok(id),
    async get(id) {
      if (!src.outcome.ok(id)) return undefined;
      await src.writer.flush();
      const rec = src.overlay?.get(id) ?? await src.records.action(src.name, id);
      return rec ? entry(id, rec) : undefined;
    },
    async *[Symbol.asyncIterator]() {
      for await (const [id, rec] of okRecords(src)) yield entry(id, rec);
    },
  };
}

/** The records of the task's successful items of this run, in id order. */
export async function* okRecords(src: OutputSource): AsyncGenerator<[string, ActionRecord]> {
  await src.writer.flush();
  for await (const [id, rec] of src.records.actionsInOrder(src.name)) {
    if (src.outcome.ok(id)) yield [id, src.overlay?.get(id) ?? rec];
  }
}

/**
 * A per-item task's outputs after its items flowed: read back from its records, in id order or
 * one at a time, never held in memory as a whole. The task's state says which items count (the
 * records also hold items of other runs: failed now, or not listed this time). The digest a
 * dependant keys on for them as a whole is hashed as the records stream by.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "../store/canonical.ts";
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

/**
 * The digest of a per-item task's outputs as a whole: the sha256 of the canonical JSON of
 * `{ fails: [[id, task, reason]…], items: [[id, digest]…] }`, both in ascending id order (by
 * UTF-16 code units, as keys have always been made), streamed from `items` (in id order of the
 * records, which differs from that order only for ids with characters beyond U+FFFF: then the
 * items are sorted in memory first).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashJson } from "../store/canonical.ts";
 *
 * async function* items(): AsyncGenerator<[string, string]> {
 *   yield* [["a", "d1"], ["b", "d2"]] as [string, string][];
 * }
 * const fails: [string, string, string][] = [["c", "verify", "too small"]];
 * assert.equal(
 *   await wholeDigest(items, fails),
 *   hashJson({ items: [["a", "d1"], ["b", "d2"]], fails }),
 * );
 * ```
 */
export async function wholeDigest(
  items: () => AsyncIterable<[string, string]>,
  fails: [string, string, string][],
): Promise<string> {
  fails.sort((a, b) => a[0] < b[0] ? -1 : 1);
  const hash = createHash("sha256");
  hash.update(`{"fails":${canonicalJson(fails)},"items":[`);
  let last: string | undefined;
  for await (const pair of items()) {
    // Out of UTF-16 order: read again and sorted in memory.
    if (last !== undefined && !(last < pair[0])) return await sortedDigest(items(), fails);
    hash.update(`${last === undefined ? "" : ","}${canonicalJson(pair)}`);
    last = pair[0];
  }
  hash.update("]}");
  return hash.digest("hex");
}

/** {@link wholeDigest} of items read into memory and sorted by UTF-16 code units. */
async function sortedDigest(
  items: AsyncIterable<[string, string]>,
  fails: [string, string, string][],
): Promise<string> {
  const all = await Array.fromAsync(items);
  all.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
  return createHash("sha256").update(canonicalJson({ items: all, fails })).digest("hex");
}

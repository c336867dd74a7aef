/**
 * Invalidating what was built from a bad object: every record that names a corrupt or missing
 * object among its outputs or inputs is deleted, and so is every record built from such a
 * record — through the output digests records keep of their inputs, and, for an aggregate task,
 * through the graph (its inputs are a digest of whole item lists). The next run then rebuilds
 * exactly those actions and nothing else.
 *
 * @module
 */
import { type ActionRecord, AGGREGATE_ITEM, type Records } from "./records.ts";

/** What {@link invalidateFrom} deleted. */
export interface Invalidated {
  /** Records deleted (current and superseded ones). */
  records: number;
  /** Current records deleted, per task. */
  byTask: Record<string, number>;
}

/**
 * Deletes the records built, directly or downstream, from the objects `bad` names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KEYS } from "./record_keys.ts";
 * import { openRecords } from "./records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const records = await openRecords(cache);
 * const [bad, latent] = ["ab".repeat(32), "cd".repeat(32)];
 * const action = (objects: Record<string, string>, inputs: Record<string, string>) => ({
 *   key: "k", taskHash: "t", inputs, objects, meta: null, digest: latent, run: 1, ms: 1,
 * });
 * const writer = records.writer();
 * writer.set(KEYS.action("optimize", "00017"), action({ latent }, { tensor: bad }));
 * writer.set(KEYS.action("package", "*"), action({ index: "ef".repeat(32) }, {}));
 * await writer.flush();
 * const deps = new Map([["package", ["optimize"]]]);
 * const inv = await invalidateFrom(records, new Set([bad]), { deps });
 * assert.deepEqual(inv.byTask, { optimize: 1, package: 1 }); // and package, built from it
 * records.close();
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function invalidateFrom(
  records: Records,
  bad: Set<string>,
  { deps = new Map(), all }: {
    /** The tasks each task reads (default none: digest links only). */
    deps?: Map<string, string[]>;
    /** The current and superseded records, when the caller has listed them already. */
    all?: ListedAction[];
  } = {},
): Promise<Invalidated> {
  all ??= await listActions(records);
  const tainted = new Set(bad);
  const taintedTasks = new Set<string>();
  const invalid = new Set<number>();
  for (let changed = true; changed;) {
    changed = false;
    for (const [n, { key, record, current }] of all.entries()) {
      if (invalid.has(n)) continue;
      const task = String(key[1]);
      const fromBad = Object.values(record.objects).some((d) => tainted.has(d)) ||
        Object.values(record.inputs).some((d) => tainted.has(d)) ||
        (key[2] === AGGREGATE_ITEM && (deps.get(task) ?? []).some((t) => taintedTasks.has(t)));
      if (!fromBad) continue;
      invalid.add(n);
      tainted.add(record.digest);
      // A superseded record built nothing current: only current ones taint aggregates.
      if (current) taintedTasks.add(task);
      changed = true;
    }
  }
  const out: Invalidated = { records: invalid.size, byTask: {} };
  if (invalid.size === 0) return out;
  for (const n of invalid) {
    const { key, current } = all[n];
    if (current) out.byTask[String(key[1])] = (out.byTask[String(key[1])] ?? 0) + 1;
  }
  await records.deleteKeys([...invalid].map((n) => all[n].key));
  return out;
}

/** A current or superseded action record and its key. */
export interface ListedAction {
  key: Deno.KvKey;
  record: ActionRecord;
  current: boolean;
}

/** Every current and superseded action record. */
export async function listActions(records: Records): Promise<ListedAction[]> {
  return await Array.fromAsync(records.allActions());
}

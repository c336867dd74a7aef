/**
 * What a run did, or a plan would do, per task: the shape `run`, `status` and `explain` read.
 *
 * @module
 */
import type { ActionRecord, KeyComponents } from "../store/records.ts";
import type { Json } from "../store/canonical.ts";
import type { SystemicFault } from "../store/systemic.ts";
import type { TaskCounts, TaskStatus } from "./events.ts";
import type { KeyLookup } from "./item_join.ts";
import type { ItemPlan, PlanTally, TaskOutcome } from "./task_state.ts";
import type { ActionDecider } from "./staleness.ts";

export type { ItemPlan, PlanTally };

/** What a run did, or a plan would do. */
export interface RunResult {
  run: number;
  status: "ok" | "failed" | "interrupted";
  exitCode: number;
  tasks: Map<string, TaskSummary>;
  /** The fault of the machine or the store that stopped the run (exit code 3). */
  fault?: SystemicFault;
}

/** One task's part of a run or plan. */
export interface TaskSummary {
  status: TaskStatus;
  counts: TaskCounts;
  reason?: string;
  /** Action keys of the items kept in detail (see task_state.ts), where known. */
  keys: KeyLookup;
  /** Items kept in detail that are not cached, and why (a plan). */
  plans: ReadonlyMap<string, ItemPlan>;
  /** Why items are not cached, counted over every item (a plan). */
  tally: PlanTally;
  /** Set when the plan cannot list the task's items: they all may run. */
  unlisted?: string;
  /** Items kept in detail, in the order they were listed or arrived. */
  items: readonly string[];
  /** Items kept in detail whose action ran (successfully or not) in this run. */
  executed: readonly string[];
  /** Whether the task was handed item `id`. */
  knows(id: string): boolean;
  /** The current action record of an item, read from the records. */
  record(id: string): Promise<ActionRecord | null>;
  failures: ReadonlyMap<string, string>;
  slice: Record<string, Json>;
  /** The key components of an item now (those of its record when it is cached). */
  components(id: string): Promise<KeyComponents | null>;
  /** The components the recorded action of an item was keyed with. */
  recordedComponents(id: string): Promise<KeyComponents | null>;
}

/**
 * The summary of a task once it has ended: its state, and the components of its items from the
 * decision; `record` reads an item's current record.
 */
export function taskSummary(
  s: TaskOutcome,
  decider: Pick<ActionDecider, "components" | "recordedComponentsOf">,
  slice: Record<string, Json>,
  record: (id: string) => Promise<ActionRecord | null>,
): TaskSummary {
  return {
    status: s.status,
    counts: s.counts,
    reason: s.reason,
    keys: s.keys,
    plans: s.plans,
    tally: s.tally,
    unlisted: s.unlisted,
    items: s.expected,
    executed: s.executed,
    knows: (id) => s.knows(id),
    record,
    failures: s.failed,
    slice,
    components: async (id) => {
      const now = s.components.get(id);
      if (now) return now;
      const rec = await record(id);
      return rec && s.keys.get(id) === rec.key ? decider.components(rec.inputs, rec.params) : null;
    },
    recordedComponents: (id) => decider.recordedComponentsOf(id),
  };
}

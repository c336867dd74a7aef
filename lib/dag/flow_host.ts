/**
 * What a flow — the items of a per-item task (item_flow.ts), or an aggregate task's single
 * action (aggregate_flow.ts) — needs from the task it drives: the run, the task's state and
 * context, and the decision applied to an item.
 *
 * @module
 */
import type { Pool } from "./pool.ts";
import type { RunContext } from "./run_context.ts";
import type { Item, ItemOutputs, TaskContext } from "./task.ts";
import type { TaskState } from "./task_state.ts";

/** What every flow needs from the task it drives. */
export interface FlowHost {
  readonly run: RunContext;
  readonly state: TaskState;
  readonly ctx: TaskContext<unknown>;
  readonly dryRun: boolean;
  readonly signal: AbortSignal;
  /** The input digests of the task's files and of `deps` as a whole. */
  wholeInputs(deps: readonly string[]): Promise<Record<string, string>>;
  /**
   * Decides one item and applies the decision: its output flows on, it is planned, or it goes
   * to `pool` (an aggregate task's flow runs its action itself: `null`); `again` when the item
   * was decided before (its inputs rebuilt), so it is not counted twice.
   */
  admit(item: Item, inputs: Record<string, string>, pool: Pool | null, again?: boolean): void;
  /** Resolves once every admitted item's decision is applied. */
  admitted(): Promise<void>;
  /** The task's successful items, streamed from their records in id order. */
  outputs(): ItemOutputs;
}

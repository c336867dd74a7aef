/**
 * The vocabulary of pools: a task's actions that are not cached go to a {@link Pool} as
 * {@link Work}, which takes them one by one and says when every one is recorded; whoever
 * records their results is its {@link PoolHost}. The work pool (work_pool.ts) runs them here;
 * the remote pool (remote_pool.ts) hands them to an executor (Slurm) as one wave.
 *
 * @module
 */
import type { ActionRecord, KeyComponents } from "../store/records.ts";
import type { FlowGate } from "./flow_gate.ts";
import type { ActionResult, Item, ItemContext, RetryPolicy, TaskContext } from "./task.ts";

/** One action to execute: the item, its key and the components of the key. */
export interface Work {
  item: Item;
  key: string;
  comps: KeyComponents;
  /** Attempts made so far. */
  attempts: number;
  /** The item's current record when it was decided (superseded once this action is recorded). */
  prev?: ActionRecord;
  /** Whether a failure record of the item is to be cleared once this action is recorded. */
  failedBefore?: boolean;
  /** Failed attempts that count against the retry policy (a quota refusal does not). */
  counted?: number;
  /** Set once the action saved a checkpoint, so finishing it removes the checkpoint. */
  checkpointed?: boolean;
  /** Set when the action runs again to rebuild an output whose objects were damaged. */
  rebuild?: boolean;
  /** The group a batched task got the item in, and when. */
  group?: string;
  started?: number;
}

/** What a pool needs from whoever records its results. */
export interface PoolHost {
  readonly signal: AbortSignal;
  /** Concurrency override for every per-item task. */
  readonly concurrency?: number;
  /** Counts the actions in flight run-wide, for the listings' backpressure. */
  readonly gate?: FlowGate;
  readonly ctx: TaskContext<unknown>;
  /** The task's prepared state (its `prepare` runs once, before the first action). */
  prepared(): Promise<unknown>;
  runItem(work: Work, state: unknown): Promise<void>;
  record(work: Work, out: ActionResult, ms: number): Promise<void>;
  recordFailure(work: Work, e: unknown, ms: number): void;
  /** Told before an item is retried after `e`, `delayMs` from now. */
  onRetry(work: Work, e: unknown, delayMs: number): void;
  itemContext(work: Work): ItemContext<unknown>;
  retryPolicy(): RetryPolicy;
}

/** Takes a task's actions to run and says when all are recorded. */
export interface Pool {
  /** Queues one action. */
  add(work: Work): void;
  /** No more actions will be added (besides those `hold` still waits for). */
  close(): void;
  /**
   * Keeps the pool from draining until `pending` settles: an action that will be queued again
   * once something else is done (its damaged input rebuilt) is still to come.
   */
  hold(pending: Promise<unknown>): void;
  /** Resolves once every action added is recorded (or failed), or the run was interrupted. */
  drained(): Promise<void>;
  /**
   * Set when the pool could not run the task at all (its `prepare` failed: a missing or broken
   * model): the task fails once with this error instead of once per item.
   */
  readonly fatal?: unknown;
}

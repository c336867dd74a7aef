/**
 * Where a task's actions that are not cached go: a {@link Pool} takes them one by one and says
 * when every one is recorded. {@link WorkPool} runs them here; the remote pool hands them to an
 * executor (Slurm) as one wave.
 *
 * @module
 */
import type { Work } from "./work_pool.ts";

export type { Work };

/** Takes a task's actions to run and says when all are recorded. */
export interface Pool {
  /** Queues one action. */
  add(work: Work): void;
  /** No more actions will be added. */
  close(): void;
  /** Resolves once every action added is recorded (or failed), or the run was interrupted. */
  drained(): Promise<void>;
  /**
   * Set when the pool could not run the task at all (its `prepare` failed: a missing or broken
   * model): the task fails once with this error instead of once per item.
   */
  readonly fatal?: unknown;
}

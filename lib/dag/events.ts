/**
 * The events a run reports, consumed by the progress displays and by `--json`.
 *
 * @module
 */
import type { RemotePlan } from "./remote.ts";

/** Counts of one task in a run. */
export interface TaskCounts {
  /** Items known so far (grows while upstream items arrive). */
  total: number;
  ran: number;
  cached: number;
  failed: number;
  /** True once the task knows it will receive no more items. */
  final: boolean;
}

/** Something that happened during a run. */
export type RunEvent =
  | { event: "run-start"; run: number; targets: string[]; tasks: string[]; dryRun: boolean }
  | { event: "task-start"; task: string }
  | {
    event: "item";
    task: string;
    item: string;
    status: "ran" | "failed";
    ms: number;
    reason?: string;
  }
  | { event: "retry"; task: string; item: string; attempt: number; delayMs: number; reason: string }
  /** In a plan: an item that would (or may) run, and why. */
  | { event: "plan"; task: string; item: string; verdict: "run" | "may"; reasons: string[] }
  | { event: "log"; task: string; message: string; detail?: string }
  | {
    event: "task-end";
    task: string;
    status: TaskStatus;
    counts: TaskCounts;
    reason?: string;
    /** In a dry run: why items would run, with how many items each reason covers. */
    wouldRun?: Record<string, number>;
    /** In a dry run: on what items that may run depend, with how many items each covers. */
    mayRun?: Record<string, number>;
    /** In a dry run: why the task's items cannot be listed yet (they all may run). */
    unlisted?: string;
    /** In a dry run of a task an executor runs: how its actions would be split. */
    remote?: RemotePlan;
  }
  | {
    event: "run-end";
    run: number;
    status: "ok" | "failed" | "interrupted";
    exitCode: number;
    seconds: number;
  };

/** How a task ended. */
export type TaskStatus = "ok" | "failed" | "blocked" | "interrupted";

/** Receives run events. */
export interface Reporter {
  emit(event: RunEvent): void;
  /** Called with live counts (throttled by the caller's needs; cheap to ignore). */
  progress(task: string, counts: TaskCounts): void;
  /**
   * An item's progress inside its action: at step `done` of at most `budget` (optimize's steps).
   * An item's first report says where it starts (0, or where its checkpoint left it).
   */
  steps?(task: string, item: string, done: number, budget: number): void;
  close(): void;
}

/**
 * What a run is given, and what each task driver shares with the run it belongs to: the run's
 * services, and a read-only view of every other task of the run.
 *
 * @module
 */
import type { ObjectAliases } from "../store/aliases.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { Output, Records, RecordWriter } from "../store/records.ts";
import type { Reporter } from "./events.ts";
import type { TaskGraph } from "./graph.ts";
import type { Executor } from "./remote.ts";
import type { CodeReader } from "./code_identity.ts";
import type { ItemOutputs, Task, Upstream } from "./task.ts";
import type { TaskOutcome } from "./task_state.ts";
import type { Produced } from "./item_join.ts";
import type { RunFactsCollector } from "./run_facts.ts";
import type { SpaceCheck } from "../store/space.ts";
import type { ItemTable } from "./item_table.ts";
import type { FlowGate } from "./flow_gate.ts";

/** How to run. */
export interface RunOptions {
  graph: TaskGraph;
  targets: string[];
  config: unknown;
  store: ObjectStore;
  records: Records;
  reporter: Reporter;
  signal: AbortSignal;
  /** Only the first N items of every listing (for trying things). */
  limit?: number;
  /** The config file `config` was loaded from (tasks record it with what they publish). */
  configFile?: string;
  /** Plan only: decide what would run and why, execute nothing. */
  dryRun?: boolean;
  /** Tasks whose cache is ignored. */
  force?: string[];
  /** Concurrency override for every per-item task. */
  concurrency?: number;
  /** Runs some per-item tasks elsewhere (e.g. as Slurm job arrays). */
  executor?: Executor;
  /**
   * Let per-item tasks sum themselves up (`EachTask.summarize`). Default true; `status` and
   * `explain` plan without them.
   */
  summaries?: boolean;
  /** Items asked about by name (`explain TASK ITEM`): kept in full detail whatever their number. */
  watch?: ReadonlySet<string>;
}

/** Another task of the run, as a task reads it. */
export interface TaskView {
  readonly task: Task;
  /** What it has come to so far. */
  readonly outcome: TaskOutcome;
  /** The files the task declared, by name: store digests in a run, identities in a plan. */
  fileDigests(): Record<string, string>;
  /** Its successful items, streamed in id order (see {@link ItemOutputs}). */
  outputs(): ItemOutputs;
  /** The ids and output digests of its successful items, in id order. */
  outputDigests(): AsyncIterable<[string, string]>;
  /**
   * Runs item `id` of a per-item task again, within this run, because objects of its output
   * were found damaged; resolves with the new output, or null when it could not be rebuilt.
   */
  rebuild(id: string): Promise<Produced | null>;
  /** Drops the record of item `id` (its objects are damaged): the next run builds it again. */
  invalidate(id: string): void;
}

/** The run as its task drivers see it. */
export interface RunContext {
  readonly options: RunOptions;
  readonly runId: number;
  readonly writer: RecordWriter;
  readonly aliases: ObjectAliases;
  /** What published outputs state about this run. */
  readonly facts: RunFactsCollector;
  /** Reads the code identity of the run's tasks (each module once per run). */
  readonly code: CodeReader;
  /** Another task of this run. */
  driver(name: string): TaskView;
  /** What aggregate tasks, `items` functions and `finish` checks read from upstream. */
  upstream(): Upstream;
  /** The digest of an output that flowed through this run. */
  digestOf(out: Output): string;
  remember(out: Output, digest: string): void;
  /** Notes a finished action's checkpoint, removed once its record is committed. */
  checkpointDone(path: string): void;
  /**
   * Stops the run when `e` is a fault of the machine or the store rather than of an item (a
   * full disk, a read-only folder, a damaged database); returns whether it was.
   */
  fault(e: unknown): boolean;
  /** Warns once when the work queued needs more space than the cache's disk has. */
  readonly space: SpaceCheck;
  /** Every item id of the run, once (see item_table.ts). */
  readonly items: ItemTable;
  /** Actions in flight run-wide; listings wait for room (see flow_gate.ts). */
  readonly gate: FlowGate;
}

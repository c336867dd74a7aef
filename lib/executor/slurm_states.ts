/**
 * The state of every task of a Slurm job array, read from the three commands that each know a
 * part of it.
 *
 * Where task states come from: `squeue -r` lists the tasks that are pending or running, one line
 * per task; `scontrol show job` still knows finished tasks (with exit codes) for `MinJobAge`
 * seconds after they end; `sacct` knows them afterwards, but only where the cluster keeps
 * accounting (slurmdbd). Without accounting, a task that was cancelled while pending, or one that
 * finished more than `MinJobAge` seconds ago, is unknown to Slurm and absent from the result.
 *
 * @module
 */
import { sleep } from "../base/sleep.ts";
import { expandArrayIndices } from "./slurm_array_indices.ts";
import { commandFailed, runSlurm, type SlurmCommandOptions } from "./slurm_command.ts";
import { SlurmError } from "./slurm_error.ts";

/** The states Slurm reports for a job or array task (`squeue --states`). */
export type SlurmJobState =
  | "PENDING"
  | "CONFIGURING"
  | "RUNNING"
  | "COMPLETING"
  | "SUSPENDED"
  | "STOPPED"
  | "SIGNALING"
  | "STAGE_OUT"
  | "RESIZING"
  | "REQUEUED"
  | "REQUEUE_FED"
  | "REQUEUE_HOLD"
  | "RESV_DEL_HOLD"
  | "COMPLETED"
  | "FAILED"
  | "CANCELLED"
  | "TIMEOUT"
  | "NODE_FAIL"
  | "OUT_OF_MEMORY"
  | "PREEMPTED"
  | "BOOT_FAIL"
  | "DEADLINE"
  | "REVOKED"
  | "SPECIAL_EXIT";

const TERMINAL: ReadonlySet<string> = new Set<SlurmJobState>([
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "TIMEOUT",
  "NODE_FAIL",
  "OUT_OF_MEMORY",
  "PREEMPTED",
  "BOOT_FAIL",
  "DEADLINE",
  "REVOKED",
  "SPECIAL_EXIT",
]);

const KNOWN: ReadonlySet<string> = new Set<SlurmJobState>([
  "PENDING",
  "CONFIGURING",
  "RUNNING",
  "COMPLETING",
  "SUSPENDED",
  "STOPPED",
  "SIGNALING",
  "STAGE_OUT",
  "RESIZING",
  "REQUEUED",
  "REQUEUE_FED",
  "REQUEUE_HOLD",
  "RESV_DEL_HOLD",
  ...TERMINAL as ReadonlySet<SlurmJobState>,
]);

/**
 * Whether a task in this state has ended and will not run again by itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(isTerminalState("FAILED"), true);
 * assert.equal(isTerminalState("COMPLETING"), false); // its processes are still being cleaned up
 * ```
 */
export function isTerminalState(state: SlurmJobState): boolean {
  return TERMINAL.has(state);
}

/** The state of one array task. */
export interface ArrayTaskState {
  state: SlurmJobState;
  /** The script's exit status, once the task has ended (`scontrol`/`sacct` `ExitCode` N:_). */
  exitCode?: number;
  /** The signal that ended the task, 0 if none (`ExitCode` _:N; 15 after `scancel`). */
  signal?: number;
  /** Why a pending task waits (`Resources`, `Priority`, …), as Slurm words it. */
  reason?: string;
}

function checkJobId(jobId: number): void {
  if (!Number.isInteger(jobId) || jobId <= 0) {
    throw new SlurmError(`expected a Slurm job id (a positive integer), found ${jobId}`);
  }
}

function parseState(text: string, source: string): SlurmJobState {
  // sacct says "CANCELLED by 0"; squeue and scontrol say "CANCELLED".
  const state = text.trim().split(/\s+/)[0];
  if (!KNOWN.has(state)) {
    throw new SlurmError(`${source} reported the unknown job state ${JSON.stringify(text)}`);
  }
  return state as SlurmJobState;
}

function parseExitCode(text: string, source: string): { exitCode: number; signal: number } {
  const match = /^(\d+):(\d+)$/.exec(text);
  if (!match) {
    throw new SlurmError(`${source} reported the exit code ${JSON.stringify(text)}, expected N:S`);
  }
  return { exitCode: Number(match[1]), signal: Number(match[2]) };
}

const INVALID_JOB = /Invalid job id specified/i;

/** Pending and running tasks, one line each thanks to `-r`. */
async function liveTasks(
  jobId: number,
  options: SlurmCommandOptions,
): Promise<Map<number, ArrayTaskState>> {
  const args = ["-h", "-r", "-j", String(jobId), "-o", "%F|%K|%T|%r"];
  const result = await runSlurm("squeue", args, { env: options.env });
  const tasks = new Map<number, ArrayTaskState>();
  if (result.code !== 0) {
    // A job whose every task ended MinJobAge ago (or that never existed) is an error to squeue.
    if (INVALID_JOB.test(result.stderr)) return tasks;
    throw commandFailed("squeue", args, result);
  }
  for (const line of result.stdout.split("\n")) {
    if (line.trim() === "") continue;
    const [arrayJob, index, state, reason] = line.split("|");
    if (arrayJob !== String(jobId) || !/^\d+$/.test(index ?? "")) {
      throw new SlurmError(
        `squeue: expected a task of array job ${jobId} ("${jobId}|index|state|reason"), found ` +
          JSON.stringify(line),
        { command: "squeue" },
      );
    }
    tasks.set(Number(index), {
      state: parseState(state, "squeue"),
      ...(reason && reason !== "None" ? { reason } : {}),
    });
  }
  return tasks;
}

function field(record: string, key: string): string | undefined {
  return new RegExp(`(?:^|\\s)${key}=(\\S*)`).exec(record)?.[1];
}

/** Every task the controller still holds in memory, finished ones with their exit codes. */
async function controllerTasks(
  jobId: number,
  options: SlurmCommandOptions,
): Promise<Map<number, ArrayTaskState>> {
  const args = ["show", "job", "-o", String(jobId)];
  const result = await runSlurm("scontrol", args, { env: options.env });
  const tasks = new Map<number, ArrayTaskState>();
  if (result.code !== 0) {
    if (INVALID_JOB.test(result.stderr)) return tasks;
    throw commandFailed("scontrol", args, result);
  }
  for (const record of result.stdout.split("\n")) {
    if (record.trim() === "") continue;
    const taskSpec = field(record, "ArrayTaskId");
    const state = field(record, "JobState");
    const exit = field(record, "ExitCode");
    if (taskSpec === undefined || state === undefined || exit === undefined) {
      throw new SlurmError(
        `scontrol show job ${jobId}: expected an array task record with ArrayTaskId, JobState ` +
          `and ExitCode, found ${JSON.stringify(record.slice(0, 200))}`,
        { command: "scontrol" },
      );
    }
    const reason = field(record, "Reason");
    const parsed = parseState(state, "scontrol");
    const ended = TERMINAL.has(parsed);
    // Tasks not started yet share one record whose ArrayTaskId is a range ("2-9%2").
    for (const index of expandArrayIndices(taskSpec)) {
      tasks.set(index, {
        state: parsed,
        ...(ended ? parseExitCode(exit, "scontrol") : {}),
        ...(!ended && reason && reason !== "None" ? { reason } : {}),
      });
    }
  }
  return tasks;
}

const ACCOUNTING_DISABLED = /accounting storage is disabled/i;

/**
 * Tasks from the accounting database, or `undefined` where the cluster keeps no accounting
 * (then `sacct` says so and finished tasks are known only to `scontrol`).
 */
async function accountedTasks(
  jobId: number,
  options: SlurmCommandOptions,
): Promise<Map<number, ArrayTaskState> | undefined> {
  const args = ["-n", "-P", "-X", "-j", String(jobId), "-o", "JobID,State,ExitCode"];
  const result = await runSlurm("sacct", args, { env: options.env });
  if (ACCOUNTING_DISABLED.test(result.stderr + result.stdout)) return undefined;
  if (result.code !== 0) throw commandFailed("sacct", args, result);
  const tasks = new Map<number, ArrayTaskState>();
  for (const line of result.stdout.split("\n")) {
    if (line.trim() === "") continue;
    const [id, state, exit] = line.split("|");
    // "123_4" for a task that ran, "123_[5-9%2]" for those still pending.
    const match = new RegExp(`^${jobId}_(?:(\\d+)|\\[([^\\]]+)\\])$`).exec(id);
    if (!match || state === undefined || exit === undefined) {
      throw new SlurmError(
        `sacct: expected a task of array job ${jobId} ("${jobId}_N|state|exit"), found ` +
          JSON.stringify(line),
        { command: "sacct" },
      );
    }
    const parsed = parseState(state, "sacct");
    const indices = match[1] !== undefined ? [Number(match[1])] : expandArrayIndices(match[2]);
    for (const index of indices) {
      tasks.set(index, {
        state: parsed,
        ...(TERMINAL.has(parsed) ? parseExitCode(exit, "sacct") : {}),
      });
    }
  }
  return tasks;
}

interface Snapshot {
  tasks: Map<number, ArrayTaskState>;
  live: number;
}

async function snapshot(jobId: number, options: SlurmCommandOptions): Promise<Snapshot> {
  checkJobId(jobId);
  // Read the live view first: a task that ends between the two reads then shows as ended.
  const live = await liveTasks(jobId, options);
  const controller = await controllerTasks(jobId, options);
  const tasks = new Map(live);
  for (const [index, task] of controller) {
    if (!tasks.has(index) || TERMINAL.has(task.state)) tasks.set(index, task);
  }
  // The controller's view is current; the database only fills in tasks it has forgotten.
  const accounted = await accountedTasks(jobId, options);
  for (const [index, task] of accounted ?? []) {
    if (!tasks.has(index)) tasks.set(index, task);
  }
  return { tasks: new Map([...tasks].sort(([a], [b]) => a - b)), live: live.size };
}

/**
 * The state of every task of array job `jobId` that Slurm knows about, by task index (sorted).
 * Pending tasks come one per index (never as a compressed `123_[3-9]` range); finished ones
 * carry their exit code and signal. An index absent from the map is unknown to Slurm: cancelled
 * while still pending, or finished longer ago than `MinJobAge` on a cluster without accounting.
 *
 * @example
 * ```ts ignore
 * // Not run as a test: it needs a Slurm cluster (tests/executor_slurm_test.ts starts one).
 * const jobId = 4242;
 * const states = await jobStates(jobId);
 * const failed = [...states].filter(([, t]) => t.state === "FAILED").map(([i]) => i);
 * ```
 */
export async function jobStates(
  jobId: number,
  options: SlurmCommandOptions = {},
): Promise<Map<number, ArrayTaskState>> {
  return (await snapshot(jobId, options)).tasks;
}

/** How {@linkcode waitForArray} polls. */
export interface WaitForArrayOptions extends SlurmCommandOptions {
  /** Give up after this long, with a {@linkcode SlurmError} (default: 600 000 ms). */
  timeoutMs?: number;
  /** Time between polls (default: 1 000 ms). */
  pollMs?: number;
  /** Called with every poll's states, e.g. to report progress (default: none). */
  onPoll?: (states: Map<number, ArrayTaskState>) => void;
  /** Stops waiting (rejecting with the signal's reason); the job is left as it is (default: none). */
  signal?: AbortSignal;
}

/**
 * Polls {@linkcode jobStates} until no task of the array is pending or running any more, and
 * returns the final states (indices unknown to Slurm are absent, as there).
 *
 * @example
 * ```ts ignore
 * // Not run as a test: it needs a Slurm cluster (tests/executor_slurm_test.ts starts one).
 * const jobId = 4242;
 * const states = await waitForArray(jobId, { timeoutMs: 60_000 });
 * const ok = [...states.values()].every((t) => t.state === "COMPLETED");
 * ```
 */
export async function waitForArray(
  jobId: number,
  options: WaitForArrayOptions = {},
): Promise<Map<number, ArrayTaskState>> {
  const { timeoutMs = 600_000, pollMs = 1_000, onPoll, signal } = options;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    signal?.throwIfAborted();
    const { tasks, live } = await snapshot(jobId, options);
    onPoll?.(tasks);
    const running = [...tasks].filter(([, task]) => !TERMINAL.has(task.state));
    if (live === 0 && running.length === 0) return tasks;
    if (Date.now() >= deadline) {
      const summary = running.map(([index, task]) => `${jobId}_${index} ${task.state}`).join(", ");
      throw new SlurmError(
        `array job ${jobId} did not finish within ${timeoutMs} ms; still unfinished: ${summary}`,
      );
    }
    await sleep(pollMs, signal);
  }
}

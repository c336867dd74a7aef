/**
 * A small client for Slurm's command-line tools: submit a job array (`sbatch`), read the state of
 * each array task (`squeue`, `scontrol`, `sacct`), cancel a job or one task (`scancel`), and check
 * that a directory is visible from the compute nodes.
 *
 * Every call spawns the real command, found on `PATH` (the `env` option can change `PATH`; the
 * rest of the environment is inherited). Slurm's configuration is found the usual way
 * (`/etc/slurm/slurm.conf`, or `SLURM_CONF`).
 *
 * Where task states come from: `squeue -r` lists the tasks that are pending or running, one line
 * per task; `scontrol show job` still knows finished tasks (with exit codes) for `MinJobAge`
 * seconds after they end; `sacct` knows them afterwards, but only where the cluster keeps
 * accounting (slurmdbd). Without accounting, a task that was cancelled while pending, or one that
 * finished more than `MinJobAge` seconds ago, is unknown to Slurm and absent from the result.
 *
 * @module
 */
import { SlurmError } from "./slurm_error.ts";
import { sleep } from "../base/sleep.ts";

export { SlurmError };

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
 * isTerminalState("FAILED"); // true
 * isTerminalState("COMPLETING"); // false: its processes are still being cleaned up
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

/** Options every call accepts. */
export interface SlurmCommandOptions {
  /**
   * Variables set for the Slurm command on top of the inherited environment (default: none).
   * `PATH` here decides where the command is found; for `submitArray` the job inherits these too.
   */
  env?: Record<string, string>;
}

/** What to submit with {@linkcode submitArray}. */
export interface SubmitArrayOptions extends SlurmCommandOptions {
  /** Path of the batch script. Exactly one of `scriptPath` and `scriptText` is required. */
  scriptPath?: string;
  /** The batch script itself (`#!/bin/sh …`), handed to `sbatch` on stdin. */
  scriptText?: string;
  /** Submit tasks `0` … `arraySize - 1`. Exactly one of `arraySize` and `indices` is required. */
  arraySize?: number;
  /** The task indices, as a list or in `--array` syntax (`"0-9"`, `"1,4,7"`, `"0-15:4"`). */
  indices?: string | readonly number[];
  /** At most this many tasks run at once (`--array=…%N`; default: no limit). */
  maxRunning?: number;
  /** `--job-name`, shown by `squeue`. */
  jobName: string;
  /** `--partition` (default: the cluster's default partition). */
  partition?: string;
  /** `--time`: minutes, or Slurm's syntax (`"2:00:00"`, `"1-12"`) (default: the partition's). */
  timeLimit?: number | string;
  /** `--gres`, e.g. `"gpu:1"` (default: none). */
  gres?: string;
  /** `--cpus-per-task` (default: Slurm's, 1). */
  cpusPerTask?: number;
  /** `--output` file pattern (`%A` job, `%a` task index) (default: Slurm's `slurm-%A_%a.out`). */
  output?: string;
  /** `--error` file pattern (default: stderr goes to the output file). */
  error?: string;
  /** Working directory of the tasks (`--chdir`) (default: the current one). */
  cwd?: string;
  /** More `sbatch` arguments, placed before the script (default: none). */
  extraArgs?: readonly string[];
}

interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

async function runSlurm(
  command: string,
  args: readonly string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<CommandResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args: [...args],
      env: options.env,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new SlurmError(
        `${command} not found on PATH: install Slurm's client commands or run on a login node`,
        { command, cause: error },
      );
    }
    throw new SlurmError(`could not start ${command}: ${(error as Error).message}`, {
      command,
      cause: error,
    });
  }
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(options.stdin));
      await writer.close();
    } catch (error) {
      // The command quit without reading its input (e.g. a bad option): its exit code and
      // stderr, read below, say why.
      if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
    }
  }
  const output = await child.output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr).trim(),
  };
}

function commandFailed(
  command: string,
  args: readonly string[],
  result: CommandResult,
): SlurmError {
  return new SlurmError(
    `${command} ${args.join(" ")} failed (exit code ${result.code}): ${
      result.stderr || "(nothing on stderr)"
    }`,
    { command, stderr: result.stderr, exitCode: result.code },
  );
}

function arraySpec(options: SubmitArrayOptions): string {
  const { arraySize, indices, maxRunning } = options;
  if ((arraySize === undefined) === (indices === undefined)) {
    throw new SlurmError(
      `job "${options.jobName}": give exactly one of arraySize and indices, found ${
        arraySize === undefined ? "neither" : "both"
      }`,
    );
  }
  let spec: string;
  if (arraySize !== undefined) {
    if (!Number.isInteger(arraySize) || arraySize < 1) {
      throw new SlurmError(
        `job "${options.jobName}": arraySize must be a positive integer, found ${arraySize}`,
      );
    }
    spec = `0-${arraySize - 1}`;
  } else if (typeof indices === "string") {
    expandArrayIndices(indices); // validates
    spec = indices;
  } else {
    const list = indices as readonly number[];
    if (list.length === 0 || !list.every((i) => Number.isInteger(i) && i >= 0)) {
      throw new SlurmError(
        `job "${options.jobName}": indices must be non-negative integers, found [${list}]`,
      );
    }
    spec = list.join(",");
  }
  if (maxRunning !== undefined) {
    if (!Number.isInteger(maxRunning) || maxRunning < 1) {
      throw new SlurmError(
        `job "${options.jobName}": maxRunning must be a positive integer, found ${maxRunning}`,
      );
    }
    spec += `%${maxRunning}`;
  }
  return spec;
}

/**
 * Submits a job array with `sbatch --parsable` and returns its job id. Each task sees its index in
 * `SLURM_ARRAY_TASK_ID`; `jobId_index` names one task (for {@linkcode cancel}).
 *
 * Throws {@linkcode SlurmError} when `sbatch` is missing, or with Slurm's own message when it
 * rejects the job (unknown partition, time limit over the partition's, bad `--gres` …).
 *
 * @example
 * ```ts
 * const jobId = await submitArray({
 *   scriptText: "#!/bin/sh\nexec deno run -A pipeline.ts worker --shard $SLURM_ARRAY_TASK_ID/3\n",
 *   arraySize: 3,
 *   jobName: "latentforge-optimize",
 *   partition: "gpu",
 *   gres: "gpu:1",
 *   timeLimit: "12:00:00",
 * });
 * ```
 */
export async function submitArray(options: SubmitArrayOptions): Promise<number> {
  const { scriptPath, scriptText, jobName } = options;
  if ((scriptPath === undefined) === (scriptText === undefined)) {
    throw new SlurmError(
      `job "${jobName}": give exactly one of scriptPath and scriptText, found ${
        scriptPath === undefined ? "neither" : "both"
      }`,
    );
  }
  const args = ["--parsable", `--array=${arraySpec(options)}`, `--job-name=${jobName}`];
  if (options.partition !== undefined) args.push(`--partition=${options.partition}`);
  if (options.timeLimit !== undefined) args.push(`--time=${options.timeLimit}`);
  if (options.gres !== undefined) args.push(`--gres=${options.gres}`);
  if (options.cpusPerTask !== undefined) args.push(`--cpus-per-task=${options.cpusPerTask}`);
  if (options.output !== undefined) args.push(`--output=${options.output}`);
  if (options.error !== undefined) args.push(`--error=${options.error}`);
  if (options.cwd !== undefined) args.push(`--chdir=${options.cwd}`);
  args.push(...(options.extraArgs ?? []));
  if (scriptPath !== undefined) args.push(scriptPath);

  // The working directory goes to Slurm only (--chdir): a missing one is then Slurm's error
  // message, not a failure to start sbatch.
  const result = await runSlurm("sbatch", args, { env: options.env, stdin: scriptText });
  if (result.code !== 0) {
    throw new SlurmError(
      `Slurm rejected job "${jobName}" (sbatch exit code ${result.code}): ${
        result.stderr || "(nothing on stderr)"
      }`,
      { command: "sbatch", stderr: result.stderr },
    );
  }
  // --parsable prints "jobid" or "jobid;cluster".
  const match = /^(\d+)(;\S*)?$/.exec(result.stdout.trim());
  if (!match) {
    throw new SlurmError(
      `job "${jobName}": expected sbatch --parsable to print a job id, found ${
        JSON.stringify(result.stdout.trim())
      }`,
      { command: "sbatch", stderr: result.stderr },
    );
  }
  return Number(match[1]);
}

/**
 * Expands an array index specification in `--array` syntax (without the `%N` limit, which is
 * ignored if present) into the sorted list of indices.
 *
 * @example
 * ```ts
 * expandArrayIndices("0-3,7"); // [0, 1, 2, 3, 7]
 * expandArrayIndices("1-9:4%2"); // [1, 5, 9]
 * ```
 */
export function expandArrayIndices(spec: string): number[] {
  const indices = new Set<number>();
  const body = spec.split("%")[0];
  for (const part of body.split(",")) {
    const match = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (!match) {
      throw new SlurmError(
        `array index specification ${JSON.stringify(spec)}: expected "N", "N-M" or "N-M:S" ` +
          `separated by commas, found ${JSON.stringify(part)}`,
      );
    }
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    const step = match[3] === undefined ? 1 : Number(match[3]);
    if (last < first || step < 1) {
      throw new SlurmError(
        `array index specification ${JSON.stringify(spec)}: empty range ${JSON.stringify(part)}`,
      );
    }
    for (let i = first; i <= last; i += step) indices.add(i);
  }
  return [...indices].sort((a, b) => a - b);
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
 * ```ts
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
 * ```ts
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

/**
 * Cancels a whole job (`123`) or one array task (`"123_4"`) with `scancel`. Cancelling a job that
 * has already ended is not an error (scancel itself accepts it), so a coordinator can cancel on
 * interrupt without first checking.
 *
 * @example
 * ```ts
 * const jobId = 4242;
 * await cancel(`${jobId}_1`); // just task 1
 * await cancel(jobId); // everything left
 * ```
 */
export async function cancel(
  target: number | string,
  options: SlurmCommandOptions = {},
): Promise<void> {
  const text = String(target);
  if (!/^[1-9]\d*(_\d+)?$/.test(text)) {
    throw new SlurmError(
      `expected a job id ("123") or an array task ("123_4") to cancel, found ${
        JSON.stringify(text)
      }`,
    );
  }
  const result = await runSlurm("scancel", [text], { env: options.env });
  if (result.code !== 0) throw commandFailed("scancel", [text], result);
}

/** How {@linkcode probeSharedPath} submits its probe job. */
export interface ProbeSharedPathOptions extends SlurmCommandOptions {
  /** `--partition` of the probe (default: the cluster's default partition). */
  partition?: string;
  /** More `sbatch` arguments, e.g. the account (default: none). */
  extraArgs?: readonly string[];
  /** Give up waiting for the probe job after this long (default: 300 000 ms). */
  timeoutMs?: number;
  /** After the job ends, wait this long for the marker to show (NFS caches) (default: 10 000 ms). */
  markerWaitMs?: number;
  /** Time between polls (default: 500 ms). */
  pollMs?: number;
  /** Cancels the probe job and rejects with the signal's reason (default: none). */
  signal?: AbortSignal;
}

async function readMarker(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Checks that `dir` (the cache directory) is the same directory on the compute nodes: submits a
 * one-task job that writes a marker file into it, waits for the job, and looks for the marker
 * here. Throws {@linkcode SlurmError} naming the directory when the marker does not appear.
 *
 * @example
 * ```ts
 * await probeSharedPath("/shared/latentforge/cache", { partition: "gpu" });
 * ```
 */
export async function probeSharedPath(
  dir: string,
  options: ProbeSharedPathOptions = {},
): Promise<void> {
  const { timeoutMs = 300_000, markerWaitMs = 10_000, pollMs = 500, signal } = options;
  signal?.throwIfAborted();
  const absolute = dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`;
  const token = crypto.randomUUID();
  const marker = `${absolute.replace(/\/+$/, "")}/.slurm-probe-${token}`;
  const quoted = `'${marker.replaceAll("'", `'\\''`)}'`;
  // The job succeeds even when it cannot write: the missing marker is the answer.
  const scriptText = `#!/bin/sh\nprintf '%s' '${token}' > ${quoted} 2>/dev/null\nexit 0\n`;
  const jobId = await submitArray({
    scriptText,
    indices: "0",
    jobName: "latentforge-probe",
    partition: options.partition,
    timeLimit: 5,
    output: "/dev/null",
    extraArgs: options.extraArgs,
    env: options.env,
  });
  let states: Map<number, ArrayTaskState>;
  try {
    states = await waitForArray(jobId, { timeoutMs, pollMs, env: options.env, signal });
  } catch (error) {
    // Most likely still pending on a busy cluster: do not leave the probe queued behind us.
    await cancel(jobId, { env: options.env });
    if (signal?.aborted) throw signal.reason;
    throw new SlurmError(
      `the probe job ${jobId} for cache directory ${absolute} did not finish: ${
        (error as Error).message
      }`,
      { cause: error },
    );
  }
  const task = states.get(0);
  if (task !== undefined && task.state !== "COMPLETED") {
    throw new SlurmError(
      `the probe job ${jobId} for cache directory ${absolute} ended ${task.state}` +
        (task.exitCode !== undefined ? ` (exit code ${task.exitCode}:${task.signal})` : "") +
        `: cannot tell whether the directory is visible from the compute nodes`,
    );
  }
  const markerDeadline = Date.now() + markerWaitMs;
  while (true) {
    const content = await readMarker(marker);
    if (content === token) {
      await Deno.remove(marker);
      return;
    }
    if (Date.now() >= markerDeadline) break;
    signal?.throwIfAborted();
    await sleep(pollMs, signal);
  }
  throw new SlurmError(
    `cache directory ${absolute} is not visible from the compute nodes (the probe job ${jobId} ` +
      `wrote no marker): put the cache on a shared filesystem`,
  );
}

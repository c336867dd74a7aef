/**
 * Submitting a job array with `sbatch`: each task sees its index in `SLURM_ARRAY_TASK_ID`.
 *
 * @module
 */
import { expandArrayIndices } from "./slurm_array_indices.ts";
import { runSlurm, type SlurmCommandOptions } from "./slurm_command.ts";
import { SlurmError } from "./slurm_error.ts";

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
 * ```ts ignore
 * // Not run as a test: it needs a Slurm cluster (tests/executor_slurm_test.ts starts one).
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

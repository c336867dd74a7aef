/**
 * Checking that the cache directory is the same directory on the compute nodes, by a probe job
 * that writes a marker into it.
 *
 * @module
 */
import { sleep } from "../base/sleep.ts";
import { cancel } from "./slurm_cancel.ts";
import type { SlurmCommandOptions } from "./slurm_command.ts";
import { SlurmError } from "./slurm_error.ts";
import { type ArrayTaskState, waitForArray } from "./slurm_states.ts";
import { submitArray } from "./slurm_submit.ts";

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
 * ```ts ignore
 * // Not run as a test: it needs a Slurm cluster (tests/executor_slurm_test.ts starts one).
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

/**
 * Runs waves of per-item actions as Slurm job arrays against the shared cache: one
 * `sbatch --array` per wave, each array task running `worker` on its shard; results are
 * imported while the job runs; shards that failed or were cancelled are resubmitted (their
 * finished items are skipped by the worker), and Ctrl-C cancels the job.
 *
 * @module
 */
import { join, resolve } from "node:path";
import type { Executor } from "../dag/remote.ts";
import { sleep } from "../base/sleep.ts";
import type { ExecutorConfig } from "./config.ts";
import { cancel } from "./slurm_cancel.ts";
import { SlurmError } from "./slurm_error.ts";
import { probeSharedPath } from "./slurm_probe.ts";
import { type ArrayTaskState, isTerminalState, jobStates } from "./slurm_states.ts";
import { submitArray } from "./slurm_submit.ts";

/**
 * How long the state of a running job may stay unreadable (squeue/scontrol failing) before the
 * wave fails and the job is cancelled: longer than a controller takes to fail over or restart.
 */
const STATUS_FAILURE_LIMIT_MS = 300_000;

/** How to start a worker on a compute node. */
export interface WorkerCommand {
  /** Absolute path of the deno binary on the nodes. */
  deno: string;
  /** Arguments before the worker's own (`run`, permission flags, the pipeline's entry file). */
  args: string[];
  /** Directory the worker starts in (the project). */
  cwd: string;
}

/** The Slurm executor. */
export class SlurmExecutor implements Executor {
  readonly name = "slurm";
  readonly tasks: string[];
  readonly #config: ExecutorConfig;
  readonly #cacheDir: string;
  readonly #worker: WorkerCommand;
  #probed = false;

  constructor(config: ExecutorConfig, cacheDir: string, worker: WorkerCommand) {
    this.#config = config;
    this.tasks = config.tasks;
    this.#cacheDir = resolve(cacheDir);
    this.#worker = worker;
  }

  shards(items: number): number {
    return Math.max(1, Math.min(this.#config.array_tasks, items));
  }

  async runWave(
    { task, listDigest, shards, items, signal, log, importResults, unfinished }: Parameters<
      Executor["runWave"]
    >[0],
  ): Promise<void> {
    const cfg = this.#config;
    if (!(await this.#probeOnce(signal))) return;
    const logs = join(this.#cacheDir, "logs", "slurm");
    await Deno.mkdir(logs, { recursive: true });
    const script = this.#script(listDigest, shards);
    let pending: number[] = Array.from({ length: shards }, (_, i) => i);
    for (let attempt = 0; attempt <= cfg.retries && pending.length > 0; attempt++) {
      if (signal.aborted) return;
      const jobId = await submitArray({
        scriptText: script,
        indices: pending,
        jobName: `latentforge-${task}`,
        partition: cfg.slurm.partition,
        timeLimit: cfg.slurm.time,
        gres: cfg.slurm.gres,
        cpusPerTask: cfg.slurm.cpus_per_task,
        extraArgs: cfg.slurm.extra_args,
        output: join(logs, "%A_%a.out"),
        cwd: this.#worker.cwd,
      });
      log(
        `submitted ${task} as Slurm job ${jobId} (array ${compact(pending)} of ${shards} ` +
          `shards, ${items} items${attempt ? `, resubmission ${attempt}` : ""})`,
      );
      const watched = await this.#watchOrCancel(jobId, pending, signal, importResults, log);
      if (watched === null) return;
      const short = await unfinished();
      for (const s of short) {
        const st = watched.states.get(s);
        const how = st
          ? `ended ${st.state}${st.exitCode !== undefined ? ` (exit ${st.exitCode})` : ""}`
          : `is gone from Slurm (last seen ${watched.lastSeen.get(s) ?? "never"}; cancelled?)`;
        log(
          `${task}: array task ${jobId}_${s} ${how}; its unfinished items ` +
            `${attempt < cfg.retries ? "will be resubmitted" : "fail"} ` +
            `(its output: ${join(logs, `${jobId}_${s}.out`)})`,
        );
      }
      pending = short;
    }
  }

  /**
   * Checks once per executor that the cache is shared with the compute nodes (when the config
   * asks); false when interrupted while the probe waited (it has been cancelled, and nothing
   * was submitted).
   */
  async #probeOnce(signal: AbortSignal): Promise<boolean> {
    const cfg = this.#config;
    if (!cfg.slurm.probe_shared || this.#probed) return true;
    try {
      await probeSharedPath(this.#cacheDir, {
        partition: cfg.slurm.partition,
        extraArgs: cfg.slurm.extra_args,
        signal,
      });
    } catch (error) {
      if (signal.aborted) return false;
      throw error;
    }
    this.#probed = true;
    return true;
  }

  /**
   * Watches a submitted job to its end. The job is cancelled when the watch is interrupted
   * (then null) or fails: a job is never left computing unattended.
   */
  async #watchOrCancel(
    jobId: number,
    indices: number[],
    signal: AbortSignal,
    importResults: () => Promise<void>,
    log: (line: string) => void,
  ): Promise<{ states: Map<number, ArrayTaskState>; lastSeen: Map<number, string> } | null> {
    let cancelled: Promise<void> | undefined;
    const cancelJob = () =>
      cancelled ??= cancel(jobId).then(
        () => log(`cancelled Slurm job ${jobId}`),
        (e: Error) =>
          log(`could not cancel Slurm job ${jobId} (${e.message}): run scancel ${jobId}`),
      );
    // An interrupt that came while sbatch ran fires no abort event any more.
    if (signal.aborted) cancelJob();
    else signal.addEventListener("abort", cancelJob, { once: true });
    const lastSeen = new Map<number, string>();
    let states: Map<number, ArrayTaskState>;
    try {
      states = await this.#watch(jobId, indices, signal, importResults, lastSeen, log);
    } catch (error) {
      await cancelJob();
      throw error;
    } finally {
      signal.removeEventListener("abort", cancelJob);
    }
    if (signal.aborted) {
      await cancelJob();
      return null;
    }
    return { states, lastSeen };
  }

  #script(listDigest: string, shards: number): string {
    const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const deno = this.#config.slurm.deno ?? this.#worker.deno;
    const cmd = [
      deno,
      ...this.#worker.args,
      "worker",
      "--work",
      listDigest,
      "--shard",
      `\${SLURM_ARRAY_TASK_ID}/${shards}`,
      "--cache",
      this.#cacheDir,
    ].map((a) => a.startsWith("${") ? `"${a}"` : a.includes("${") ? `"${a}"` : quote(a));
    return `#!/bin/bash\nset -e\ncd ${quote(this.#worker.cwd)}\nexec ${cmd.join(" ")}\n`;
  }

  async #watch(
    jobId: number,
    indices: number[],
    signal: AbortSignal,
    importResults: () => Promise<void>,
    lastSeen: Map<number, string>,
    log: (line: string) => void,
  ): Promise<Map<number, ArrayTaskState>> {
    const pollMs = this.#config.poll_s * 1000;
    let failingSince: number | undefined;
    while (true) {
      await importResults();
      let states: Map<number, ArrayTaskState> | undefined;
      try {
        states = await jobStates(jobId);
        if (failingSince !== undefined) log(`Slurm answers again about job ${jobId}`);
        failingSince = undefined;
      } catch (error) {
        // A busy or restarting controller makes squeue/scontrol fail for a while; the job runs
        // on regardless. Anything else (no command, unreadable output) will not get better.
        if (!(error instanceof SlurmError) || error.commandExitCode === undefined) throw error;
        const now = Date.now();
        if (failingSince === undefined) {
          failingSince = now;
          log(`cannot read the state of Slurm job ${jobId}, trying again: ${error.message}`);
        } else if (now - failingSince > STATUS_FAILURE_LIMIT_MS) {
          throw new SlurmError(
            `could not read the state of Slurm job ${jobId} for ${
              Math.round((now - failingSince) / 1000)
            } s: ${error.message}`,
            { command: error.command, stderr: error.stderr, cause: error },
          );
        }
      }
      if (states) {
        for (const [i, st] of states) lastSeen.set(i, st.state);
        // A task Slurm no longer lists has ended (cancelled while pending, or long finished).
        const live = indices.filter((i) => {
          const s = states.get(i);
          return s !== undefined && !isTerminalState(s.state);
        });
        if (live.length === 0) return states;
      }
      if (signal.aborted) return states ?? new Map();
      try {
        await sleep(pollMs, signal);
      } catch (e) {
        // Interrupted while waiting: the next turn returns what is known.
        if (!signal.aborted) throw e;
      }
    }
  }
}

function compact(indices: number[]): string {
  return indices.length > 6 ? `${indices[0]}-${indices[indices.length - 1]}` : indices.join(",");
}

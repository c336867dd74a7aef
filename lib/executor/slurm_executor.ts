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
import type { ExecutorConfig } from "./config.ts";
import {
  type ArrayTaskState,
  cancel,
  isTerminalState,
  jobStates,
  probeSharedPath,
  SlurmError,
  submitArray,
} from "./slurm.ts";

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

  async runWave(
    { task, listDigest, list, signal, log, importResults }: Parameters<Executor["runWave"]>[0],
  ): Promise<void> {
    const cfg = this.#config;
    if (cfg.slurm.probe_shared && !this.#probed) {
      await probeSharedPath(this.#cacheDir, {
        partition: cfg.slurm.partition,
        extraArgs: cfg.slurm.extra_args,
      });
      this.#probed = true;
    }
    const shards = Math.min(cfg.array_tasks, list.works.length);
    const logs = join(this.#cacheDir, "logs", "slurm");
    await Deno.mkdir(logs, { recursive: true });
    const script = this.#script(listDigest, shards);
    let pending: number[] = Array.from({ length: shards }, (_, i) => i);
    for (let attempt = 0; attempt <= cfg.retries && pending.length > 0; attempt++) {
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
          `shards, ${list.works.length} items${attempt ? `, resubmission ${attempt}` : ""})`,
      );
      const onAbort = () => cancel(jobId).catch(() => {});
      signal.addEventListener("abort", onAbort, { once: true });
      let states: Map<number, ArrayTaskState>;
      const lastSeen = new Map<number, string>();
      try {
        states = await this.#watch(jobId, pending, signal, importResults, lastSeen);
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
      if (signal.aborted) {
        log(`cancelled Slurm job ${jobId}`);
        return;
      }
      const missing = await importResults();
      const index = new Map(list.works.map((w, i) => [w.id, i]));
      const short = [...new Set(missing.map((id) => index.get(id)! % shards))].sort((a, b) =>
        a - b
      );
      for (const s of short) {
        const st = states.get(s);
        const how = st
          ? `ended ${st.state}${st.exitCode !== undefined ? ` (exit ${st.exitCode})` : ""}`
          : `is gone from Slurm (last seen ${lastSeen.get(s) ?? "never"}; cancelled?)`;
        log(
          `${task}: array task ${jobId}_${s} ${how}; its unfinished items ` +
            `${attempt < cfg.retries ? "will be resubmitted" : "fail"}`,
        );
      }
      pending = short;
    }
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
    importResults: () => Promise<string[]>,
    lastSeen: Map<number, string>,
  ): Promise<Map<number, ArrayTaskState>> {
    const pollMs = this.#config.poll_s * 1000;
    while (true) {
      await importResults();
      const states = await jobStates(jobId);
      for (const [i, st] of states) lastSeen.set(i, st.state);
      // A task Slurm no longer lists has ended (cancelled while pending, or long finished).
      const live = indices.filter((i) => {
        const s = states.get(i);
        return s !== undefined && !isTerminalState(s.state);
      });
      if (live.length === 0 || signal.aborted) return states;
      await new Promise<void>((r) => {
        const t = setTimeout(r, pollMs);
        signal.addEventListener("abort", () => {
          clearTimeout(t);
          r();
        }, { once: true });
      });
    }
  }
}

function compact(indices: number[]): string {
  return indices.length > 6 ? `${indices[0]}-${indices[indices.length - 1]}` : indices.join(",");
}

export { SlurmError };

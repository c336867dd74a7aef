/**
 * The `executor` section of a config: where per-item tasks run. It changes no result, so no
 * task's key depends on it.
 *
 * @module
 */
import { z } from "zod";

/** Validates the `executor` config section. */
export const ExecutorSchema = z.strictObject({
  kind: z.enum(["local", "slurm"]).default("local"),
  /** Per-item tasks handed to the executor; the others run locally. */
  tasks: z.array(z.string()).default(["encode", "optimize"]),
  /** Times a failed or cancelled array task's missing items are resubmitted. */
  retries: z.number().int().min(0).default(2),
  /** Array tasks per wave (capped by the number of items). */
  array_tasks: z.number().int().positive().default(16),
  /** Seconds between polls of Slurm and the results directory. */
  poll_s: z.number().positive().default(5),
  slurm: z.strictObject({
    partition: z.string().optional(),
    /** Time limit per array task (`--time`, e.g. "4:00:00"). */
    time: z.string().optional(),
    /** Generic resources per array task (`--gres`, e.g. "gpu:1"). */
    gres: z.string().optional(),
    cpus_per_task: z.number().int().positive().optional(),
    /** Further `sbatch` arguments, e.g. ["--mem=16G", "--account=lab"]. */
    extra_args: z.array(z.string()).default([]),
    /** The deno binary on the compute nodes (default: the coordinator's). */
    deno: z.string().optional(),
    /** Check with a probe job that the cache directory is visible from the nodes. */
    probe_shared: z.boolean().default(true),
  }).prefault({}),
}).prefault({});

/** A validated executor config. */
export type ExecutorConfig = z.infer<typeof ExecutorSchema>;

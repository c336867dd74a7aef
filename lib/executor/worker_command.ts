/**
 * The command a compute node runs for one shard: `deno run … <entry> worker --work … --shard …`.
 * `<entry>` is the pipeline's own entry module (e.g. `pipeline.ts`), whatever command started
 * the coordinator: `deno task demo` runs the coordinator from the demo's module, whose command
 * line is not the pipeline's, so the process's main module cannot stand in for it.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { WorkerCommand } from "./slurm_executor.ts";

/**
 * How a node starts a worker of the pipeline whose entry module is `entry` (a `file:` URL).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const worker = workerCommand("file:///srv/latentforge/pipeline.ts");
 * assert.deepEqual(worker.args, [
 *   "run", "--allow-all", "--unstable-kv", "--unstable-cron", "/srv/latentforge/pipeline.ts",
 * ]);
 * ```
 */
export function workerCommand(entry: string): WorkerCommand {
  return {
    deno: Deno.execPath(),
    args: ["run", "--allow-all", "--unstable-kv", "--unstable-cron", fileURLToPath(entry)],
    cwd: Deno.cwd(),
  };
}

/**
 * The command line: `run`, `status`, `explain`, `dag`, `gc`, `verify`, `schedule` and `worker`,
 * one module each; this one builds the program, hands the arguments to the command they name,
 * and ends with the command's exit code or the one its error carries (see exit_codes.ts).
 *
 * @module
 */
import { Command } from "commander";
import { TaskGraph } from "../dag/graph.ts";
import type { Pipeline } from "../dag/task.ts";
import { checkCacheDir } from "../store/cache_dir.ts";
import { addDagCommand } from "./dag.ts";
import { EXIT, reportError } from "./exit_codes.ts";
import { addExplainCommand } from "./explain.ts";
import { addGcCommand } from "./gc.ts";
import type { Cli } from "./options.ts";
import { addRunCommand } from "./run.ts";
import { addScheduleCommand } from "./schedule.ts";
import { addStatusCommand } from "./status.ts";
import { addVerifyCommand } from "./verify.ts";
import { addWorkerCommand } from "./worker.ts";

/** The commands, in the order `--help` lists them. */
const COMMANDS = [
  addRunCommand,
  addStatusCommand,
  addExplainCommand,
  addDagCommand,
  addGcCommand,
  addVerifyCommand,
  addScheduleCommand,
  addWorkerCommand,
];

/**
 * Runs the CLI for a pipeline and returns the exit code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pipeline } from "../../pipeline.ts";
 *
 * assert.equal(await main(pipeline, ["dag", "--format", "dot"]), 0);
 * assert.equal(await main(pipeline, ["no-such-command"]), 2);
 * ```
 */
export async function main<C>(pipeline: Pipeline<C>, args: string[]): Promise<number> {
  const cli: Cli<C> = { pipeline, graph: new TaskGraph(pipeline.tasks), code: EXIT.ok };
  let cacheDir = "./cache";
  const program = new Command()
    .name("latentforge")
    .description("Build datasets of optimized Stable Diffusion latents as a cached task graph.")
    .version(pipeline.version)
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) })
    .hook("preAction", async (_program, command) => {
      // A --cache that names a file is a bad invocation, said before any work.
      cacheDir = command.opts().cache ?? cacheDir;
      if (command.opts().cache !== undefined) await checkCacheDir(cacheDir);
    });
  for (const add of COMMANDS) add(program, cli);
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (e) {
    return reportError(e, cacheDir);
  }
  return cli.code;
}

/**
 * `worker`: runs one shard of a stored work list against the shared cache, as an executor (a
 * Slurm array task) starts it on another machine. SIGTERM and SIGINT stop it at a safe point
 * (exit code 130); what it finished is kept.
 *
 * @module
 */
import { type Command, InvalidArgumentError } from "commander";
import { runWorker } from "../dag/worker.ts";
import { ObjectStore } from "../store/objects.ts";
import { EXIT } from "./exit_codes.ts";
import { type Cli, positiveInt } from "./options.ts";

/** The options of `worker`. */
interface WorkerFlags {
  work: string;
  shard: string;
  cache: string;
  concurrency?: number;
}

/**
 * Adds `worker` to the program; its action sets `cli.code`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Command } from "commander";
 * import { TaskGraph } from "../dag/graph.ts";
 * import { pipeline } from "../../pipeline.ts";
 *
 * const cli = { pipeline, graph: new TaskGraph(pipeline.tasks), code: -1 };
 * const program = new Command().exitOverride();
 * addWorkerCommand(program, cli);
 * const started = program.parseAsync(["worker", "--work", "ab", "--shard", "3"], { from: "user" });
 * await assert.rejects(started, /--shard expects i\/N, found "3"/);
 * ```
 */
export function addWorkerCommand<C>(program: Command, cli: Cli<C>): void {
  program.command("worker")
    .description("run one shard of a stored work list (started by an executor such as Slurm)")
    .requiredOption("--work <digest>", "the work list object")
    .requiredOption("--shard <i/N>", "which shard to run, e.g. 3/16")
    .option("--cache <dir>", "the shared cache directory", "./cache")
    .option("--concurrency <n>", "actions at once", positiveInt)
    .action(async (opts: WorkerFlags) => {
      cli.code = await workerCommand(cli, opts);
    });
}

async function workerCommand<C>(cli: Cli<C>, opts: WorkerFlags): Promise<number> {
  const m = /^(\d+)\/(\d+)$/.exec(opts.shard);
  if (!m) throw new InvalidArgumentError(`--shard expects i/N, found "${opts.shard}"`);
  const controller = new AbortController();
  const stop = () => controller.abort();
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  try {
    const summary = await runWorker({
      graph: cli.graph,
      store: new ObjectStore(opts.cache),
      listDigest: opts.work,
      index: Number(m[1]),
      count: Number(m[2]),
      signal: controller.signal,
      log: (line) => console.error(`${new Date().toISOString()} ${line}`),
      concurrency: opts.concurrency,
    });
    console.error(`worker ${opts.shard}: ${JSON.stringify(summary)}`);
  } finally {
    Deno.removeSignalListener("SIGTERM", stop);
    Deno.removeSignalListener("SIGINT", stop);
  }
  return controller.signal.aborted ? EXIT.interrupted : EXIT.ok;
}

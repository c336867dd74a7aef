/**
 * `run [targets…]`: brings the targets up to date, running what is not cached, under the
 * cache's lease; `--dry-run` prints what would run and why, from the same plan. Objects a run
 * finds corrupt or missing are built again within it (lib/dag/damage_repair.ts). Ctrl-C
 * finishes what is in flight; a second Ctrl-C quits at once. A run ends with its closing summary
 * (closing_summary.ts): what was published where, what failed and why, how long it took.
 *
 * @module
 */
import type { Command } from "commander";
import { loadConfig } from "../dag/config.ts";
import { chooseReporter } from "../dag/progress.ts";
import { runPipeline } from "../dag/plan.ts";
import type { Executor } from "../dag/remote.ts";
import type { ExecutorConfig } from "../executor/config.ts";
import { SlurmError } from "../executor/slurm_error.ts";
import { SlurmExecutor } from "../executor/slurm_executor.ts";
import { workerCommand } from "../executor/worker_command.ts";
import { ObjectStore } from "../store/objects.ts";
import { openRecords } from "../store/records.ts";
import { type ClosingSummary, closingSummary, summaryLines } from "./closing_summary.ts";
import { EXIT } from "./exit_codes.ts";
import { runLeased } from "./leases.ts";
import {
  type Cli,
  type CommonOptions,
  type PlanFlags,
  positiveInt,
  withPlanning,
} from "./options.ts";
import { checkConfig, chooseExecutorKind } from "./planning.ts";

/** The options of `run`. */
export interface RunFlags extends PlanFlags {
  dryRun?: boolean;
  concurrency?: number;
  wait?: boolean;
}

/**
 * Adds `run` to the program; its action sets `cli.code`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Command } from "commander";
 * import { TaskGraph } from "../dag/graph.ts";
 * import { aggregate, type Pipeline } from "../dag/task.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/hello.ts`, "// the task's source\n");
 * await Deno.writeTextFile(`${dir}/p.json`, "{}");
 * const hello = aggregate({
 *   name: "hello", deps: [], config: [], version: "1", source: `file://${dir}/hello.ts`,
 *   describe: "say hello", run: () => Promise.resolve({ objects: {}, meta: "hi" }),
 * });
 * const pipeline: Pipeline = {
 *   name: "p", version: "0", tasks: [hello], defaultConfig: `${dir}/p.json`,
 *   defaultTargets: ["hello"], schema: { safeParse: (v) => ({ success: true, data: v }) },
 * };
 * const cli = { pipeline, graph: new TaskGraph(pipeline.tasks), code: -1 };
 * const program = new Command().exitOverride();
 * addRunCommand(program, cli);
 * await program.parseAsync(["run", "--json", "--cache", `${dir}/cache`], { from: "user" });
 * assert.equal(cli.code, 0);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function addRunCommand<C>(program: Command, cli: Cli<C>): void {
  const { pipeline } = cli;
  withPlanning(
    program.command("run")
      .description("run the targets and everything they need that is not cached")
      .argument("[targets...]", `tasks to bring up to date (default: ${pipeline.defaultTargets})`),
    pipeline.defaultConfig,
  )
    .option("--dry-run", "print what would run and why; execute nothing")
    .option("--concurrency <n>", "actions at once for every per-item task", positiveInt)
    .option("--wait", "wait for another run holding the cache instead of exiting")
    .action(async (targets: string[], opts: CommonOptions & RunFlags) => {
      cli.code = await runCommand(cli, targets, opts);
    });
}

async function runCommand<C>(
  { pipeline, graph }: Cli<C>,
  targets: string[],
  opts: CommonOptions & RunFlags,
): Promise<number> {
  const config = await loadConfig(pipeline, opts.config, opts.set);
  const wanted = targets.length ? targets : pipeline.defaultTargets;
  for (const t of [...wanted, ...opts.force]) graph.get(t);
  await checkConfig(graph.closure(wanted), config, opts.config);
  const executor = await chooseExecutor(config, opts, pipeline.entry ?? Deno.mainModule);
  const store = new ObjectStore(opts.cache);
  const records = await openRecords(opts.cache);
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (interrupts > 1) Deno.exit(EXIT.interrupted);
    console.error("interrupted: finishing in-flight work (Ctrl-C again to quit at once)");
    controller.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const reporter = chooseReporter(opts.json ?? false);
  const started = performance.now();
  let summary: ClosingSummary | undefined;
  try {
    const go = () =>
      runPipeline({
        graph,
        targets: wanted,
        config,
        store,
        records,
        reporter,
        signal: controller.signal,
        limit: opts.limit,
        configFile: opts.config,
        dryRun: opts.dryRun,
        force: opts.force,
        concurrency: opts.concurrency,
        executor,
      });
    if (opts.dryRun) {
      // A plan that finds a task cannot run (a missing model) says so with the run's exit code.
      return (await go()).exitCode;
    }
    return await runLeased(records, opts.cache, "run", opts.wait ?? false, async () => {
      const result = await go();
      // Said once, after the progress lines: what was found and what to do.
      if (result.fault) console.error(`error: ${result.fault.message}`);
      const order = graph.closure(wanted).map((t) => t.name);
      const seconds = (performance.now() - started) / 1000;
      summary = await closingSummary(result, order, seconds, outDir(config));
      return result.exitCode;
    });
  } finally {
    reporter.close();
    if (summary && opts.json) console.log(JSON.stringify(summary));
    else if (summary) console.error(summaryLines(summary).join("\n"));
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    records.close();
  }
}

/** The dataset's output folder, for a pipeline whose config has one. */
function outDir(config: unknown): string | undefined {
  const dir = (config as { package?: { out_dir?: unknown } }).package?.out_dir;
  return typeof dir === "string" ? dir : undefined;
}

/**
 * The executor the config and `--executor` ask for; a run checks Slurm is reachable up front (a
 * plan calls no Slurm command: it only says how the actions would be split).
 */
async function chooseExecutor(
  config: unknown,
  opts: CommonOptions & RunFlags,
  entry: string,
): Promise<Executor | undefined> {
  if (chooseExecutorKind(config, opts) === "local") return undefined;
  const section = (config as { executor: ExecutorConfig }).executor;
  if (!opts.dryRun) await assertSlurmClients();
  return new SlurmExecutor(section, opts.cache, workerCommand(entry));
}

async function assertSlurmClients(): Promise<void> {
  try {
    await new Deno.Command("sbatch", { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new SlurmError(
        "sbatch not found on PATH: install Slurm's client commands or run on a login node",
        { command: "sbatch" },
      );
    }
    throw e;
  }
}

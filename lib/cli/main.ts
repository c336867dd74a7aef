/**
 * The command line: `run`, `status`, `explain`, `dag`, `gc`, `verify` and `schedule`.
 *
 * @module
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { ConfigError, loadConfig } from "../dag/config.ts";
import type { Reporter, RunEvent } from "../dag/events.ts";
import { GraphError, TaskGraph } from "../dag/graph.ts";
import { chooseReporter } from "../dag/progress.ts";
import { runPipeline, type RunResult } from "../dag/plan.ts";
import { errorText } from "../dag/errors.ts";
import { ExplainError, explainItem, explainTask, renderItem, renderTask } from "./explain.ts";
import { renderStatus, statusRows } from "./status.ts";
import type { Pipeline, Task } from "../dag/task.ts";
import { acquireLease, type Lease, LeaseHeldError } from "../store/lease.ts";
import { collectGarbage } from "../store/maintenance.ts";
import { invalidateFrom } from "../store/invalidate.ts";
import { CacheDirError, checkCacheDir } from "../store/cache_dir.ts";
import { recordsFault } from "../store/records_file.ts";
import { systemicFault } from "../store/systemic.ts";
import { verifyCommand } from "./verify.ts";
import { OutDirError } from "../store/out_dir.ts";
import { ObjectStore } from "../store/objects.ts";
import { AGGREGATE_ITEM, openRecords, RecordFormatError, type Records } from "../store/records.ts";
import { CronError } from "./cron.ts";
import { formatReconciliation, lastReconciliation } from "../dataset/reconciliation.ts";
import { runSchedule } from "./schedule.ts";
import { runWorker, WorkerError } from "../dag/worker.ts";
import type { Executor } from "../dag/remote.ts";
import type { ExecutorConfig } from "../executor/config.ts";
import { SlurmExecutor } from "../executor/slurm_executor.ts";
import { SlurmError } from "../executor/slurm_error.ts";
import { workerCommand } from "../executor/worker_command.ts";
import { formatBytes } from "../base/bytes.ts";

/** Exit codes. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  busy: 2,
  /** A systemic fault: disk full, read-only filesystem, damaged store. */
  systemic: 3,
  interrupted: 130,
} as const;

interface CommonOptions {
  config: string;
  set: string[];
  cache: string;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/**
 * Runs the CLI for a pipeline and returns the exit code.
 *
 * @example
 * ```ts
 * import { pipeline } from "../../pipeline.ts";
 * Deno.exit(await main(pipeline, Deno.args));
 * ```
 */
export async function main<C>(pipeline: Pipeline<C>, args: string[]): Promise<number> {
  const graph = new TaskGraph(pipeline.tasks);
  let code: number = EXIT.ok;
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

  const withCommon = (cmd: Command, { config = true } = {}) => {
    if (config) {
      cmd.option("--config <file>", "config file", pipeline.defaultConfig)
        .option("--set <path=value>", "override a config field (repeatable)", collect, []);
    }
    return cmd.option("--cache <dir>", "cache directory", "./cache")
      .option("--json", "machine-readable output");
  };

  // The options that shape a plan: `status` and `explain` take them too, so they answer for
  // exactly the run the same options start.
  const withPlanning = (cmd: Command) =>
    withCommon(cmd)
      .option("--limit <n>", "only the first N items (for trying things)", positiveInt)
      .option("--force <task>", "ignore the cache of a task (repeatable)", collect, [])
      .addOption(
        new Option("--executor <kind>", "where executor.tasks run (default: config executor.kind)")
          .choices(["local", "slurm"]),
      );

  withPlanning(
    program.command("run")
      .description("run the targets and everything they need that is not cached")
      .argument("[targets...]", `tasks to bring up to date (default: ${pipeline.defaultTargets})`),
  )
    .option("--dry-run", "print what would run and why; execute nothing")
    .option("--concurrency <n>", "actions at once for every per-item task", positiveInt)
    .option("--wait", "wait for another run holding the cache instead of exiting")
    .action(async (targets: string[], opts: CommonOptions & RunFlags) => {
      code = await commandRun(pipeline, graph, targets, opts);
    });

  withPlanning(
    program.command("status").description("per task: items, cached, would run, may run, failed"),
  ).action(async (opts: CommonOptions & PlanFlags) => {
    code = await commandStatus(pipeline, graph, opts);
  });

  withPlanning(
    program.command("explain")
      .description("why a task (or one of its items) would rerun")
      .argument("<task>")
      .argument("[item]"),
  ).action(async (task: string, item: string | undefined, opts: CommonOptions & PlanFlags) => {
    code = await commandExplain(pipeline, graph, task, item, opts);
  });

  program.command("dag")
    .description("draw the task graph")
    .addOption(
      new Option("--format <format>", "output format").choices(["text", "mermaid", "dot"])
        .default("text"),
    )
    .action((opts: { format: "text" | "mermaid" | "dot" }) => {
      console.log(graph.render(opts.format).trimEnd());
    });

  withCommon(program.command("gc").description("delete objects no kept run reaches"), {
    config: false,
  })
    .option("--dry-run", "only report what would be deleted")
    .option("--keep-runs <n>", "keep what the last N successful runs reference", positiveInt, 3)
    .action(async (opts: CommonOptions & { dryRun?: boolean; keepRuns: number }) => {
      code = await withLease(opts, "gc", false, async (store, records) => {
        const r = await collectGarbage(store, records, {
          keepRuns: opts.keepRuns,
          dryRun: opts.dryRun,
        });
        if (opts.json) console.log(JSON.stringify(r));
        else {
          const verb = opts.dryRun ? "would free" : "freed";
          console.log(
            `${verb} ${
              formatBytes(r.bytesFreed)
            } in ${r.objectsDeleted} objects; kept ${r.objectsKept} ` +
              `(runs ${r.keptRuns.join(", ") || "none"}); pruned ${r.recordsPruned} old records, ` +
              `${r.tempFilesRemoved} temp files`,
          );
        }
        return EXIT.ok;
      });
    });

  withCommon(
    program.command("verify").description(
      "re-hash every object, check the records and published folders; --repair rebuilds a " +
        "damaged record database",
    ),
    { config: false },
  )
    .option("--repair", "rebuild a damaged record database from the journal first")
    .action(async (opts: CommonOptions & { repair?: boolean }) => {
      code = await verifyCommand({
        store: new ObjectStore(opts.cache),
        json: opts.json ?? false,
        repair: opts.repair ?? false,
        deps: new Map(graph.order.map((t) => [t.name, t.deps])),
        leased: (fn) => withLease(opts, "verify", false, (_store, records) => fn(records)),
      });
    });

  withCommon(
    program.command("schedule").description(
      "rebuild the schedule's targets on its cron (schedule.cron, UTC)",
    ),
  )
    .option("--once", "run now if due, then exit (for system cron or systemd timers)")
    .action(async (opts: CommonOptions & { once?: boolean }) => {
      code = await runSchedule({
        once: opts.once ?? false,
        cacheDir: opts.cache,
        loadConfig: () => loadConfig(pipeline, opts.config, opts.set),
        run: async (targets, signal) => {
          const store = new ObjectStore(opts.cache);
          const records = await openRecords(opts.cache);
          try {
            const config = await loadConfig(pipeline, opts.config, opts.set);
            return await runLeased(records, opts.cache, "schedule", false, () =>
              runPipeline({
                graph,
                targets,
                config,
                store,
                records,
                reporter: chooseReporter(opts.json ?? false),
                signal,
              }).then((r) => {
                if (r.fault) console.error(`error: ${r.fault.message}`);
                return r.exitCode;
              }));
          } finally {
            records.close();
          }
        },
      });
    });

  program.command("worker")
    .description("run one shard of a stored work list (started by an executor such as Slurm)")
    .requiredOption("--work <digest>", "the work list object")
    .requiredOption("--shard <i/N>", "which shard to run, e.g. 3/16")
    .option("--cache <dir>", "the shared cache directory", "./cache")
    .option("--concurrency <n>", "actions at once", positiveInt)
    .action(async (opts: { work: string; shard: string; cache: string; concurrency?: number }) => {
      const m = /^(\d+)\/(\d+)$/.exec(opts.shard);
      if (!m) throw new InvalidArgumentError(`--shard expects i/N, found "${opts.shard}"`);
      const controller = new AbortController();
      const stop = () => controller.abort();
      Deno.addSignalListener("SIGTERM", stop);
      Deno.addSignalListener("SIGINT", stop);
      const store = new ObjectStore(opts.cache);
      const summary = await runWorker({
        graph,
        store,
        listDigest: opts.work,
        index: Number(m[1]),
        count: Number(m[2]),
        signal: controller.signal,
        log: (line) => console.error(`${new Date().toISOString()} ${line}`),
        concurrency: opts.concurrency,
      });
      console.error(`worker ${opts.shard}: ${JSON.stringify(summary)}`);
      code = controller.signal.aborted ? EXIT.interrupted : EXIT.ok;
    });

  try {
    await program.parseAsync(args, { from: "user" });
  } catch (e) {
    return report(e, cacheDir);
  }
  return code;
}

interface PlanFlags {
  executor?: "local" | "slurm";
  limit?: number;
  force: string[];
}

interface RunFlags extends PlanFlags {
  dryRun?: boolean;
  concurrency?: number;
  wait?: boolean;
}

async function commandRun<C>(
  pipeline: Pipeline<C>,
  graph: TaskGraph,
  targets: string[],
  opts: CommonOptions & RunFlags,
): Promise<number> {
  const config = await loadConfig(pipeline, opts.config, opts.set);
  const wanted = targets.length ? targets : pipeline.defaultTargets;
  for (const t of [...wanted, ...opts.force]) graph.get(t);
  await checkConfig(graph.closure(wanted), config, opts.config);
  const executor = opts.dryRun
    ? undefined
    : await chooseExecutor(config, opts, pipeline.entry ?? Deno.mainModule);
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
      let result = await go();
      if (store.damaged.size > 0 && result.status !== "interrupted" && !result.fault) {
        result = await rerunDamaged(store, records, graph, reporter, go);
      }
      // Said once, after the progress lines: what was found and what to do.
      if (result.fault) console.error(`error: ${result.fault.message}`);
      return result.exitCode;
    });
  } finally {
    reporter.close();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    records.close();
  }
}

/** The executor kind the config and `--executor` ask for. */
function chooseExecutorKind(config: unknown, opts: PlanFlags): "local" | "slurm" {
  const section = (config as { executor?: ExecutorConfig }).executor;
  const kind = opts.executor ?? section?.kind ?? "local";
  if (kind !== "local" && !section) {
    throw new ConfigError(`--executor ${kind}: this pipeline's config has no executor section`);
  }
  return kind;
}

/**
 * Objects a run found corrupt (now quarantined) or missing: the records built from them are
 * invalidated and the run goes once more, so the actions that made them rerun.
 */
async function rerunDamaged(
  store: ObjectStore,
  records: Records,
  graph: TaskGraph,
  reporter: Reporter,
  go: () => Promise<RunResult>,
): Promise<RunResult> {
  const damaged = new Set(store.damaged);
  store.damaged.clear();
  const deps = new Map(graph.order.map((t) => [t.name, t.deps]));
  const inv = await invalidateFrom(records, damaged, { deps });
  const which = Object.entries(inv.byTask).map(([t, n]) => `${t} ${n}`).join(", ");
  reporter.emit({
    event: "log",
    task: "run",
    message: `${damaged.size} stored object(s) were corrupt or missing; running again the ` +
      `actions built from them (${which || "none recorded"})`,
  });
  return await go();
}

/** Each planned task's own check of the config against the machine (e.g. a missing folder). */
async function checkConfig(tasks: readonly Task[], config: unknown, file: string) {
  for (const task of tasks) {
    try {
      await task.check?.(config);
    } catch (e) {
      throw new ConfigError(`config ${file}: ${(e as Error).message}`);
    }
  }
}

/** The executor the config and `--executor` ask for; checks Slurm is reachable up front. */
async function chooseExecutor(
  config: unknown,
  opts: CommonOptions & RunFlags,
  entry: string,
): Promise<Executor | undefined> {
  if (chooseExecutorKind(config, opts) === "local") return undefined;
  const section = (config as { executor: ExecutorConfig }).executor;
  await assertSlurmClients();
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

async function runLeased(
  records: Records,
  cacheDir: string,
  command: string,
  wait: boolean,
  fn: () => Promise<number>,
): Promise<number> {
  let lease: Lease;
  try {
    lease = await acquireLease(records.kv, {
      cacheDir,
      command,
      wait,
      onWait: (h) => console.error(`waiting for pid ${h.pid} (${h.command}, since ${h.since})`),
    });
  } catch (e) {
    if (e instanceof LeaseHeldError) {
      console.error(e.message);
      return EXIT.busy;
    }
    throw e;
  }
  try {
    return await fn();
  } finally {
    await lease.release();
  }
}

async function withLease(
  opts: CommonOptions,
  command: string,
  wait: boolean,
  fn: (store: ObjectStore, records: Records) => Promise<number>,
): Promise<number> {
  const store = new ObjectStore(opts.cache);
  const records = await openRecords(opts.cache);
  try {
    return await runLeased(records, opts.cache, command, wait, () => fn(store, records));
  } finally {
    records.close();
  }
}

const silent: Reporter = { emit(_e: RunEvent) {}, progress() {}, close() {} };

/**
 * Plans `targets` with the options a run would get and hands the plan to `use` while the
 * records are open (explanations read recorded components lazily).
 */
async function withPlan<C, T>(
  pipeline: Pipeline<C>,
  graph: TaskGraph,
  targets: string[],
  opts: CommonOptions & PlanFlags,
  use: (plan: RunResult, records: Records) => Promise<T>,
): Promise<T> {
  const config = await loadConfig(pipeline, opts.config, opts.set);
  for (const t of [...targets, ...opts.force]) graph.get(t);
  await checkConfig(graph.closure(targets), config, opts.config);
  // Where tasks run changes nothing in a plan, but a wrong choice is still an error.
  chooseExecutorKind(config, opts);
  const store = new ObjectStore(opts.cache);
  const records = await openRecords(opts.cache);
  try {
    const plan = await runPipeline({
      graph,
      targets,
      config,
      store,
      records,
      reporter: silent,
      signal: new AbortController().signal,
      dryRun: true,
      limit: opts.limit,
      force: opts.force,
      summaries: false,
    });
    return await use(plan, records);
  } finally {
    records.close();
  }
}

async function commandStatus<C>(
  pipeline: Pipeline<C>,
  graph: TaskGraph,
  opts: CommonOptions & PlanFlags,
): Promise<number> {
  const names = graph.order.map((t) => t.name);
  return await withPlan(pipeline, graph, names, opts, async (plan, records) => {
    const lastRuns = new Map<string, string>();
    for (const [task, last] of await records.lastRuns()) lastRuns.set(task, last.lastRun);
    const rows = statusRows(names, plan, lastRuns);
    const reconciliation = await lastReconciliation(opts.cache);
    if (opts.json) {
      print(JSON.stringify({ tasks: rows, reconciliation }, null, 2));
      return EXIT.ok;
    }
    print(renderStatus(rows));
    if (reconciliation) print(`\nlast run's ${formatReconciliation(reconciliation)}`);
    return EXIT.ok;
  });
}

async function commandExplain<C>(
  pipeline: Pipeline<C>,
  graph: TaskGraph,
  task: string,
  item: string | undefined,
  opts: CommonOptions & PlanFlags,
): Promise<number> {
  graph.get(task);
  return await withPlan(pipeline, graph, [task], opts, async (plan) => {
    const t = plan.tasks.get(task)!;
    const id = item ?? (graph.get(task).kind === "aggregate" ? AGGREGATE_ITEM : undefined);
    if (t.status !== "ok" && t.reason) console.error(`${task}: ${t.reason}`);
    if (id !== undefined) {
      const e = await explainItem(task, id, t);
      print(opts.json ? JSON.stringify(e, null, 2) : renderItem(e));
    } else {
      const e = explainTask(task, t);
      print(opts.json ? JSON.stringify(e, null, 2) : renderTask(e));
    }
    return t.status === "ok" ? EXIT.ok : EXIT.failed;
  });
}

/** Writes a whole text to stdout, to a terminal, a pipe or a file alike. */
function print(text: string): void {
  const bytes = new TextEncoder().encode(text + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

function report(e: unknown, cacheDir: string): number {
  const fault = systemicFault(e, { cacheDir }) ?? recordsFault(e, cacheDir);
  if (fault) {
    console.error(`error: ${fault.message}`);
    return EXIT.systemic;
  }
  if (e instanceof CommanderError) {
    return e.code === "commander.helpDisplayed" || e.code === "commander.version" ||
        e.code === "commander.help"
      ? EXIT.ok
      : EXIT.usage;
  }
  if (
    e instanceof ConfigError || e instanceof GraphError || e instanceof CronError ||
    e instanceof WorkerError || e instanceof SlurmError || e instanceof RecordFormatError ||
    e instanceof ExplainError || e instanceof OutDirError || e instanceof CacheDirError
  ) {
    console.error(`error: ${e.message}`);
    return EXIT.usage;
  }
  if (e instanceof Error && /database is locked/.test(e.message)) {
    // Two processes opening a fresh cache at the same moment: SQLite refuses the second.
    console.error(
      "error: the cache's record database is locked by another latentforge process starting " +
        "at the same moment (database is locked); nothing was changed: run again",
    );
    return EXIT.busy;
  }
  if (e instanceof Deno.errors.NotCapable) {
    // Under `deno task`, access is granted to the project, the cache, the output directory and
    // the files and hosts the config names; anything else is refused, not prompted for.
    console.error(
      `error: ${e.message.replace(/, run again with the --allow-\w+ flag$/, "")}: ` +
        `outside what the config names (the project, --cache, package.out_dir, local model and ` +
        `data paths, and the hosts of its URLs)`,
    );
    return EXIT.usage;
  }
  console.error(`error: ${errorText(e)}`);
  return EXIT.failed;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(`expected a positive integer, found "${value}"`);
  }
  return n;
}

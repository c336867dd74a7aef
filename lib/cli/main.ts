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
import { errorText, runPipeline, type RunResult, type StaleReason } from "../dag/runner.ts";
import type { Pipeline, Task } from "../dag/task.ts";
import { acquireLease, type Lease, LeaseHeldError } from "../store/lease.ts";
import { collectGarbage, verifyStore } from "../store/maintenance.ts";
import { ObjectStore } from "../store/objects.ts";
import { AGGREGATE_ITEM, openRecords, RecordFormatError, type Records } from "../store/records.ts";
import { CronError } from "./cron.ts";
import { formatReconciliation, lastReconciliation } from "../dataset/reconciliation.ts";
import { runSchedule } from "./schedule.ts";
import { runWorker, WorkerError } from "../dag/worker.ts";
import type { Executor } from "../dag/remote.ts";
import type { ExecutorConfig } from "../executor/config.ts";
import { SlurmError, SlurmExecutor } from "../executor/slurm_executor.ts";
import { fileURLToPath } from "node:url";

/** Exit codes. */
export const EXIT = { ok: 0, failed: 1, usage: 2, busy: 2, interrupted: 130 } as const;

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
  const program = new Command()
    .name("latentforge")
    .description("Build datasets of optimized Stable Diffusion latents as a cached task graph.")
    .version(pipeline.version)
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });

  const withCommon = (cmd: Command, { config = true } = {}) => {
    if (config) {
      cmd.option("--config <file>", "config file", pipeline.defaultConfig)
        .option("--set <path=value>", "override a config field (repeatable)", collect, []);
    }
    return cmd.option("--cache <dir>", "cache directory", "./cache")
      .option("--json", "machine-readable output");
  };

  withCommon(
    program.command("run")
      .description("run the targets and everything they need that is not cached")
      .argument("[targets...]", `tasks to bring up to date (default: ${pipeline.defaultTargets})`),
  )
    .option("--limit <n>", "only the first N items (for trying things)", positiveInt)
    .option("--dry-run", "print what would run and why; execute nothing")
    .option("--force <task>", "ignore the cache of a task (repeatable)", collect, [])
    .option("--concurrency <n>", "actions at once for every per-item task", positiveInt)
    .option("--wait", "wait for another run holding the cache instead of exiting")
    .addOption(
      new Option("--executor <kind>", "where executor.tasks run (default: config executor.kind)")
        .choices(["local", "slurm"]),
    )
    .action(async (targets: string[], opts: CommonOptions & RunFlags) => {
      code = await commandRun(pipeline, graph, targets, opts);
    });

  withCommon(program.command("status").description("per task: items, cached, stale, failed"))
    .action(async (opts: CommonOptions) => {
      code = await commandStatus(pipeline, graph, opts);
    });

  withCommon(
    program.command("explain")
      .description("why a task (or one of its items) would rerun")
      .argument("<task>")
      .argument("[item]"),
  ).action(async (task: string, item: string | undefined, opts: CommonOptions) => {
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
    program.command("verify").description("re-hash every object; quarantine corrupt ones"),
    {
      config: false,
    },
  ).action(async (opts: CommonOptions) => {
    code = await withLease(opts, "verify", false, async (store, records) => {
      const r = await verifyStore(store, records);
      if (opts.json) console.log(JSON.stringify(r));
      else {
        console.log(`checked ${r.checked} objects (${formatBytes(r.bytes)})`);
        for (const c of r.corrupt) {
          console.log(`corrupt: ${c.digest} → ${c.quarantinedTo}`);
        }
        if (r.corrupt.length) {
          console.log(`${r.recordsInvalidated} records invalidated; the next run recomputes them`);
        } else console.log("no corrupt objects");
      }
      return r.corrupt.length ? EXIT.failed : EXIT.ok;
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
              }).then((r) => r.exitCode));
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
    return report(e);
  }
  return code;
}

interface RunFlags {
  executor?: "local" | "slurm";
  limit?: number;
  dryRun?: boolean;
  force: string[];
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
  const executor = opts.dryRun ? undefined : await chooseExecutor(config, opts);
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
        dryRun: opts.dryRun,
        force: opts.force,
        concurrency: opts.concurrency,
        executor,
      });
    if (opts.dryRun) {
      const result = await go();
      return result.status === "interrupted" ? EXIT.interrupted : EXIT.ok;
    }
    return await runLeased(records, opts.cache, "run", opts.wait ?? false, async () => {
      const result = await go();
      return result.exitCode;
    });
  } finally {
    reporter.close();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    records.close();
  }
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
): Promise<Executor | undefined> {
  const section = (config as { executor?: ExecutorConfig }).executor;
  const kind = opts.executor ?? section?.kind ?? "local";
  if (kind === "local") return undefined;
  if (!section) {
    throw new ConfigError(`--executor ${kind}: this pipeline's config has no executor section`);
  }
  await assertSlurmClients();
  return new SlurmExecutor(section, opts.cache, {
    deno: Deno.execPath(),
    args: [
      "run",
      "--allow-all",
      "--unstable-kv",
      "--unstable-cron",
      fileURLToPath(Deno.mainModule),
    ],
    cwd: Deno.cwd(),
  });
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

async function plan<C>(
  pipeline: Pipeline<C>,
  graph: TaskGraph,
  targets: string[],
  opts: CommonOptions,
) {
  const config = await loadConfig(pipeline, opts.config, opts.set);
  const store = new ObjectStore(opts.cache);
  const records = await openRecords(opts.cache);
  try {
    const result = await runPipeline({
      graph,
      targets,
      config,
      store,
      records,
      reporter: silent,
      signal: new AbortController().signal,
      dryRun: true,
      summaries: false,
    });
    const lastRuns = new Map<string, string>();
    for (const [task, last] of await records.lastRuns()) lastRuns.set(task, last.lastRun);
    const priorFailures = new Map<string, number>();
    for (const task of result.tasks.keys()) {
      priorFailures.set(task, (await records.failures(task)).size);
    }
    return { result, lastRuns, priorFailures };
  } finally {
    records.close();
  }
}

async function commandStatus<C>(
  pipeline: Pipeline<C>,
  graph: TaskGraph,
  opts: CommonOptions,
): Promise<number> {
  const names = graph.order.map((t) => t.name);
  const { result, lastRuns } = await plan(pipeline, graph, names, opts);
  const rows = names.map((name) => statusRow(name, result, lastRuns.get(name) ?? null));
  const reconciliation = await lastReconciliation(opts.cache);
  if (opts.json) {
    console.log(JSON.stringify({ tasks: rows, reconciliation }, null, 2));
    return EXIT.ok;
  }
  const header = ["task", "items", "cached", "stale", "failed", "last run"];
  const table = [
    header,
    ...rows.map((r) => [
      r.task,
      r.items === null ? "?" : String(r.items),
      String(r.cached),
      r.stale === null ? "all" : String(r.stale),
      String(r.failed),
      r.lastRun ?? "never",
    ]),
  ];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  for (const row of table) {
    console.log(
      row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))
        .join("  "),
    );
  }
  if (reconciliation) console.log(`\nlast run's ${formatReconciliation(reconciliation)}`);
  return EXIT.ok;
}

function statusRow(name: string, result: RunResult, lastRun: string | null) {
  const t = result.tasks.get(name)!;
  const listedNothing = t.stale.has(AGGREGATE_ITEM) && t.counts.total === 0;
  let failed = 0;
  for (const reasons of t.stale.values()) if (reasons.some((r) => r.kind === "failed")) failed++;
  return {
    task: name,
    items: listedNothing ? null : t.counts.total,
    cached: t.counts.cached,
    stale: listedNothing ? null : t.stale.size,
    failed,
    lastRun,
    blocked: t.status === "blocked" ? t.reason ?? "" : undefined,
  };
}

async function commandExplain<C>(
  pipeline: Pipeline<C>,
  graph: TaskGraph,
  task: string,
  item: string | undefined,
  opts: CommonOptions,
): Promise<number> {
  graph.get(task);
  const { result } = await plan(pipeline, graph, [task], opts);
  const t = result.tasks.get(task)!;
  const isAggregate = graph.get(task).kind === "aggregate";
  const id = item ?? (isAggregate ? AGGREGATE_ITEM : undefined);
  if (id !== undefined) {
    if (!t.keys.has(id) && !t.stale.has(id)) {
      const known = [...t.keys.keys()].slice(0, 5).join(", ");
      console.error(
        `${task} has no item "${id}" in the current plan` + (known ? ` (items: ${known}, …)` : ""),
      );
      return EXIT.usage;
    }
    const reasons = t.stale.get(id) ?? [];
    const label = id === AGGREGATE_ITEM ? task : `${task} ${id}`;
    if (opts.json) {
      console.log(JSON.stringify(
        {
          task,
          item: id === AGGREGATE_ITEM ? null : id,
          upToDate: reasons.length === 0,
          key: t.keys.get(id) ?? null,
          recordedKey: t.records.get(id)?.key ?? null,
          reasons,
          components: t.components.get(id) ?? await t.recordedComponents(id),
          recordedComponents: await t.recordedComponents(id),
        },
        null,
        2,
      ));
    } else if (reasons.length === 0) {
      console.log(`${label}: up to date (key ${t.keys.get(id)?.slice(0, 16)}…)`);
    } else {
      console.log(`${label}: would rerun`);
      for (const r of reasons) console.log(`  ${r.text}`);
    }
    return EXIT.ok;
  }
  const grouped = new Map<string, { reason: StaleReason; items: string[] }>();
  for (const [itemId, reasons] of t.stale) {
    for (const r of reasons) {
      const g = grouped.get(r.text) ?? { reason: r, items: [] };
      g.items.push(itemId);
      grouped.set(r.text, g);
    }
  }
  if (opts.json) {
    console.log(JSON.stringify(
      {
        task,
        items: t.counts.total,
        stale: t.stale.size,
        upToDate: t.stale.size === 0,
        reasons: [...grouped.values()].map((g) => ({
          ...g.reason,
          count: g.items.length,
          items: g.items.slice(0, 20),
        })),
      },
      null,
      2,
    ));
  } else if (t.stale.size === 0) {
    console.log(`${task}: up to date (${t.counts.total} items cached)`);
  } else {
    const scope = t.stale.has(AGGREGATE_ITEM) && t.counts.total === 0
      ? "would rerun"
      : `${t.stale.size} of ${t.counts.total} items would rerun`;
    console.log(`${task}: ${scope}`);
    for (const g of grouped.values()) {
      const examples = g.items.filter((i) => i !== AGGREGATE_ITEM).slice(0, 3);
      const which = examples.length ? ` (e.g. ${examples.join(", ")})` : "";
      console.log(`  ${g.reason.text} — ${g.items.length} item(s)${which}`);
    }
  }
  return EXIT.ok;
}

function report(e: unknown): number {
  if (e instanceof CommanderError) {
    return e.code === "commander.helpDisplayed" || e.code === "commander.version" ||
        e.code === "commander.help"
      ? EXIT.ok
      : EXIT.usage;
  }
  if (
    e instanceof ConfigError || e instanceof GraphError || e instanceof CronError ||
    e instanceof WorkerError || e instanceof SlurmError || e instanceof RecordFormatError
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

/** "1.2 MB" style sizes. */
export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/**
 * What `run`, `status` and `explain` check before any work, and the plan `status` and `explain`
 * answer from: the same planning a run does, with the same options, executing nothing.
 *
 * @module
 */
import { ConfigError, loadConfig } from "../dag/config.ts";
import type { Reporter, RunEvent } from "../dag/events.ts";
import { runPipeline, type RunResult } from "../dag/plan.ts";
import type { Task } from "../dag/task.ts";
import type { ExecutorConfig } from "../executor/config.ts";
import { ObjectStore } from "../store/objects.ts";
import { openRecords, type Records } from "../store/records.ts";
import type { Cli, CommonOptions, PlanFlags } from "./options.ts";

/**
 * Each planned task's own check of the config against the machine (e.g. a missing folder); what
 * a check throws becomes a {@link ConfigError} naming the config file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { aggregate } from "../dag/task.ts";
 * import { ConfigError } from "../dag/config.ts";
 *
 * const task = aggregate({
 *   name: "package", deps: [], config: [], version: "1", source: import.meta.url,
 *   describe: "write the dataset", run: () => Promise.resolve({ objects: {}, meta: null }),
 *   check: () => Promise.reject(new Error("package.out_dir: holds someone else's files")),
 * });
 * await assert.rejects(checkConfig([task], {}, "x.json"), ConfigError);
 * ```
 */
export async function checkConfig(tasks: readonly Task[], config: unknown, file: string) {
  for (const task of tasks) {
    try {
      await task.check?.(config);
    } catch (e) {
      throw new ConfigError(`config ${file}: ${(e as Error).message}`);
    }
  }
}

/**
 * The executor kind the config and `--executor` ask for; a kind the config has no section for
 * is a {@link ConfigError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(chooseExecutorKind({}, { force: [] }), "local");
 * assert.throws(() => chooseExecutorKind({}, { executor: "slurm", force: [] }), /no executor section/);
 * ```
 */
export function chooseExecutorKind(config: unknown, opts: PlanFlags): "local" | "slurm" {
  const section = (config as { executor?: ExecutorConfig }).executor;
  const kind = opts.executor ?? section?.kind ?? "local";
  if (kind !== "local" && !section) {
    throw new ConfigError(`--executor ${kind}: this pipeline's config has no executor section`);
  }
  return kind;
}

const silent: Reporter = { emit(_e: RunEvent) {}, progress() {}, close() {} };

/**
 * Plans `targets` with the options a run would get and hands the plan to `use` while the
 * records are open (explanations read recorded components lazily).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
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
 * const opts = { config: `${dir}/p.json`, set: [], cache: `${dir}/cache`, force: [] };
 * const verdict = await withPlan(cli, ["hello"], opts, (plan) =>
 *   Promise.resolve(plan.tasks.get("hello")!.plans.get("*")?.verdict));
 * assert.equal(verdict, "run"); // never ran, so it would
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function withPlan<C, T>(
  cli: Cli<C>,
  targets: string[],
  opts: CommonOptions & PlanFlags,
  use: (plan: RunResult, records: Records) => Promise<T>,
  watch?: ReadonlySet<string>,
): Promise<T> {
  const { pipeline, graph } = cli;
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
      watch,
    });
    return await use(plan, records);
  } finally {
    records.close();
  }
}

/**
 * `status`: per task of a plan, how many items there are, how many are cached, how many would
 * or may run, how many failed before, and when the task last ran something.
 *
 * @module
 */
import type { Command } from "commander";
import type { RunResult } from "../dag/plan.ts";
import { formatReconciliation, lastReconciliation } from "../dataset/reconciliation.ts";
import { EXIT } from "./exit_codes.ts";
import { type Cli, type CommonOptions, type PlanFlags, withPlanning } from "./options.ts";
import { withPlan } from "./planning.ts";
import { print } from "./print.ts";

/**
 * Adds `status` to the program; its action sets `cli.code`.
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
 * addStatusCommand(program, cli);
 * await program.parseAsync(["status", "--cache", `${dir}/cache`], { from: "user" });
 * assert.equal(cli.code, 0);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function addStatusCommand<C>(program: Command, cli: Cli<C>): void {
  withPlanning(
    program.command("status").description("per task: items, cached, would run, may run, failed"),
    cli.pipeline.defaultConfig,
  ).action(async (opts: CommonOptions & PlanFlags) => {
    cli.code = await statusCommand(cli, opts);
  });
}

async function statusCommand<C>(cli: Cli<C>, opts: CommonOptions & PlanFlags): Promise<number> {
  const names = cli.graph.order.map((t) => t.name);
  return await withPlan(cli, names, opts, async (plan, records) => {
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

/** One task's line of `status`. */
export interface StatusRow {
  task: string;
  /** Items the plan lists; null when they cannot be listed before an upstream task runs. */
  items: number | null;
  cached: number;
  /** Items that would or may run; null when the items cannot be listed (all may run). */
  stale: number | null;
  /** Items certain to run. */
  wouldRun: number;
  /** Items that run only if an input not known yet changes. */
  mayRun: number;
  /** Items that failed in an earlier run (and would run again). */
  failed: number;
  /** Items an interrupted run left unfinished (they resume from their checkpoints). */
  interrupted: number;
  lastRun: string | null;
  /** Why the task cannot be planned or run (a missing model, a blocked upstream task). */
  problem?: string;
}

/**
 * The rows of `status` for a plan's tasks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TaskGraph } from "../dag/graph.ts";
 * import { aggregate, type Pipeline } from "../dag/task.ts";
 * import { withPlan } from "./planning.ts";
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
 * const rows = await withPlan(cli, ["hello"], opts, (plan) =>
 *   Promise.resolve(statusRows(["hello"], plan, new Map())));
 * assert.deepEqual(rows, [{
 *   task: "hello", items: 1, cached: 0, stale: 1, wouldRun: 1, mayRun: 0, failed: 0,
 *   interrupted: 0, lastRun: null,
 * }]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function statusRows(
  names: string[],
  plan: RunResult,
  lastRuns: Map<string, string>,
): StatusRow[] {
  return names.map((name) => {
    const t = plan.tasks.get(name)!;
    const { run: wouldRun, may: mayRun, failed, interrupted } = t.tally;
    const row: StatusRow = {
      task: name,
      items: t.unlisted ? null : t.counts.total,
      cached: t.counts.cached,
      stale: t.unlisted ? null : wouldRun + mayRun,
      wouldRun,
      mayRun,
      failed,
      interrupted,
      lastRun: lastRuns.get(name) ?? null,
    };
    if (t.status !== "ok") row.problem = t.reason ?? t.status;
    return row;
  });
}

/**
 * `status` as a table for a terminal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const table = renderStatus([{
 *   task: "square", items: 3, cached: 3, stale: 0, wouldRun: 0, mayRun: 0, failed: 0,
 *   interrupted: 0, lastRun: null,
 * }]);
 * assert.deepEqual(table.split("\n"), [
 *   "task    items  cached  run  may run  failed  last run",
 *   "square      3       3    0        0       0     never",
 * ]);
 * ```
 */
export function renderStatus(rows: StatusRow[]): string {
  const header = ["task", "items", "cached", "run", "may run", "failed", "last run"];
  const table = [
    header,
    ...rows.map((r) => [
      r.task,
      r.items === null ? "?" : String(r.items),
      String(r.cached),
      r.items === null ? "?" : String(r.wouldRun),
      r.items === null ? "all" : String(r.mayRun),
      String(r.failed),
      r.lastRun ?? "never",
    ]),
  ];
  const widths = header.map((_, i) => Math.max(...table.map((row) => row[i].length)));
  const lines = table.map((row) =>
    row.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
  );
  for (const r of rows) {
    if (r.interrupted > 0) {
      const one = r.interrupted === 1;
      lines.push(
        `${r.task}: ${r.interrupted} ${one ? "item" : "items"} interrupted, ` +
          `${one ? "resumes from its checkpoint" : "resume from their checkpoints"}`,
      );
    }
    if (r.problem) lines.push(`${r.task}: ${r.problem}`);
    else if (r.items === null) {
      lines.push(`${r.task}: its items are known once what it reads has run`);
    }
  }
  return lines.join("\n");
}

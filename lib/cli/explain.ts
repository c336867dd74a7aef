/**
 * `explain`: why a task, or one of its items, would run — what the plan decided, with the
 * reasons the decision gave — as text or JSON.
 *
 * @module
 */
import type { Command } from "commander";
import type { TaskSummary } from "../dag/plan.ts";
import type { StaleReason } from "../dag/staleness.ts";
import { AGGREGATE_ITEM, type KeyComponents } from "../store/records.ts";
import { EXIT } from "./exit_codes.ts";
import { type Cli, type CommonOptions, type PlanFlags, withPlanning } from "./options.ts";
import { withPlan } from "./planning.ts";
import { print } from "./print.ts";

/** Raised for an item the plan does not hold. */
export class ExplainError extends Error {
  override readonly name = "ExplainError";
  /** A bad invocation (exit code 2): nothing was done. */
  readonly exitCode = 2;
}

/**
 * Adds `explain <task> [item]` to the program; its action sets `cli.code` (1 when the task
 * cannot be planned).
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
 * addExplainCommand(program, cli);
 * await program.parseAsync(["explain", "hello", "--json", "--cache", `${dir}/cache`], {
 *   from: "user",
 * });
 * assert.equal(cli.code, 0);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function addExplainCommand<C>(program: Command, cli: Cli<C>): void {
  withPlanning(
    program.command("explain")
      .description("why a task (or one of its items) would rerun")
      .argument("<task>")
      .argument("[item]"),
    cli.pipeline.defaultConfig,
  ).action(async (task: string, item: string | undefined, opts: CommonOptions & PlanFlags) => {
    cli.code = await explainCommand(cli, task, item, opts);
  });
}

async function explainCommand<C>(
  cli: Cli<C>,
  task: string,
  item: string | undefined,
  opts: CommonOptions & PlanFlags,
): Promise<number> {
  const kind = cli.graph.get(task).kind;
  // The item asked about is kept in full detail however many items the plan holds.
  const watch = item === undefined ? undefined : new Set([item]);
  return await withPlan(cli, [task], opts, async (plan) => {
    const t = plan.tasks.get(task)!;
    const id = item ?? (kind === "aggregate" ? AGGREGATE_ITEM : undefined);
    if (t.status !== "ok" && t.reason) console.error(`${task}: ${t.reason}`);
    if (id !== undefined) {
      const e = await explainItem(task, id, t);
      print(opts.json ? JSON.stringify(e, null, 2) : renderItem(e));
    } else {
      const e = explainTask(task, t);
      print(opts.json ? JSON.stringify(e, null, 2) : renderTask(e));
    }
    return t.status === "ok" ? EXIT.ok : EXIT.failed;
  }, watch);
}

/** What `explain TASK ITEM --json` prints. */
export interface ItemExplanation {
  task: string;
  item: string | null;
  /** `cached`, `run` (certain) or `may` (only if an input not known yet changes). */
  verdict: "cached" | "run" | "may";
  upToDate: boolean;
  key: string | null;
  recordedKey: string | null;
  reasons: StaleReason[];
  components: KeyComponents | null;
  recordedComponents: KeyComponents | null;
}

/**
 * Explains one item (the task itself for an aggregate task).
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
 * const why = await withPlan(cli, ["hello"], opts, (plan) =>
 *   explainItem("hello", "*", plan.tasks.get("hello")!));
 * assert.equal(why.verdict, "run"); // never ran: no record
 * await assert.rejects(
 *   withPlan(cli, ["hello"], opts, (plan) => explainItem("hello", "x", plan.tasks.get("hello")!)),
 *   ExplainError,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function explainItem(
  task: string,
  id: string,
  t: TaskSummary,
): Promise<ItemExplanation> {
  const plan = t.plans.get(id);
  const known = plan !== undefined || t.knows(id);
  if (!known && !t.unlisted) {
    const some = t.items.filter((i) => i !== AGGREGATE_ITEM).slice(0, 5);
    throw new ExplainError(
      `${task} has no item "${id}" in the plan with these options` +
        (some.length ? ` (its items: ${some.join(", ")}${t.items.length > 5 ? ", …" : ""})` : "") +
        `; pass the same --config, --set and --limit as the run`,
    );
  }
  const verdict = plan?.verdict ?? (known ? "cached" : "may");
  const reasons = plan?.reasons ??
    (known ? [] : [{ kind: "upstream" as const, text: `its items are ${t.unlisted}` }]);
  return {
    task,
    item: id === AGGREGATE_ITEM ? null : id,
    verdict,
    upToDate: verdict === "cached",
    key: t.keys.get(id) ?? null,
    recordedKey: (await t.record(id))?.key ?? null,
    reasons,
    components: await t.components(id),
    recordedComponents: await t.recordedComponents(id),
  };
}

/**
 * An item's explanation as text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const text = renderItem({
 *   task: "scale", item: "3", verdict: "cached", upToDate: true, key: "ab".repeat(32),
 *   recordedKey: null, reasons: [], components: null, recordedComponents: null,
 * });
 * assert.equal(text, "scale 3: up to date (key abababababababab…)");
 * ```
 */
export function renderItem(e: ItemExplanation): string {
  const label = e.item === null ? e.task : `${e.task} ${e.item}`;
  if (e.verdict === "cached") return `${label}: up to date (key ${e.key?.slice(0, 16)}…)`;
  const head = `${label}: ${e.verdict === "run" ? "would rerun" : "may rerun"}`;
  return [head, ...e.reasons.map((r) => `  ${r.text}`)].join("\n");
}

/** What `explain TASK --json` prints. */
export interface TaskExplanation {
  task: string;
  /** Items the plan lists; null when they cannot be listed yet. */
  items: number | null;
  cached: number;
  wouldRun: number;
  mayRun: number;
  upToDate: boolean;
  unlisted: string | null;
  reasons: (StaleReason & { verdict: "run" | "may"; count: number; items: string[] })[];
}

/**
 * Explains a whole task: its reasons, each with the items it covers.
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
 * const why = await withPlan(cli, ["hello"], opts, (plan) =>
 *   Promise.resolve(explainTask("hello", plan.tasks.get("hello")!)));
 * assert.deepEqual([why.items, why.cached, why.wouldRun, why.upToDate], [1, 0, 1, false]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function explainTask(task: string, t: TaskSummary): TaskExplanation {
  const { run: wouldRun, may: mayRun, groups } = t.tally;
  return {
    task,
    items: t.unlisted ? null : t.counts.total,
    cached: t.counts.cached,
    wouldRun,
    mayRun,
    upToDate: !t.unlisted && wouldRun + mayRun === 0,
    unlisted: t.unlisted ?? null,
    reasons: groups.map((g) => ({
      ...g.reason,
      verdict: g.verdict,
      count: g.count,
      items: g.items,
    })),
  };
}

/**
 * A task's explanation as text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const text = renderTask({
 *   task: "scale", items: 3, cached: 3, wouldRun: 0, mayRun: 0, upToDate: true,
 *   unlisted: null, reasons: [],
 * });
 * assert.equal(text, "scale: up to date (3 items cached)");
 * ```
 */
export function renderTask(e: TaskExplanation): string {
  if (e.unlisted) return `${e.task}: all items may rerun (its items are ${e.unlisted})`;
  if (e.upToDate) return `${e.task}: up to date (${e.items} items cached)`;
  const aggregate = e.reasons.every((r) => r.items.every((i) => i === AGGREGATE_ITEM));
  const parts: string[] = [];
  if (aggregate) parts.push(e.wouldRun ? "would rerun" : "may rerun");
  else {
    if (e.wouldRun) parts.push(`${e.wouldRun} of ${e.items} items would rerun`);
    if (e.mayRun) parts.push(`${e.mayRun} of ${e.items} items may rerun`);
  }
  const lines = [`${e.task}: ${parts.join(", ")}`];
  for (const g of e.reasons) {
    const examples = g.items.filter((i) => i !== AGGREGATE_ITEM).slice(0, 3);
    const which = examples.length ? ` (e.g. ${examples.join(", ")})` : "";
    const count = aggregate ? "" : ` — ${g.count} item(s)${which}`;
    lines.push(`  ${g.verdict === "may" ? "may: " : ""}${g.text}${count}`);
  }
  return lines.join("\n");
}

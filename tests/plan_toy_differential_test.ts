/**
 * The plan is the run, on the toy pipeline: a seeded random sequence of edits (config fields
 * found by walking the toy's schema, a weights file's bytes, its path, an unpinned and a pinned
 * URL for it, task source files, task versions, `--limit`, `--force`), each followed by a plan,
 * the run, and a plan again. What the plan predicts is what the run executes.
 */
import { createHash } from "node:crypto";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { configFields, PlanSequence, predictions, withField } from "./fixtures/plan_check.ts";
import { seededRandom } from "../lib/base/random.ts";
import { PlanProject } from "./fixtures/plan_project.ts";
import { runPipeline, type RunResult } from "../lib/dag/plan.ts";
import { TaskGraph } from "../lib/dag/graph.ts";
import type { Reporter } from "../lib/dag/events.ts";
import type { Pipeline, Task } from "../lib/dag/task.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { openRecords } from "../lib/store/records.ts";

const TOY = "tests/fixtures/toy";
const TASKS = ["numbers", "square", "scale", "offset", "total"];
/** Fields that say where or how things run: editing them must rerun nothing. */
const RUN_ONLY = ["executor", "schedule"];
const EDITS = Number(Deno.env.get("LATENTFORGE_PLAN_EDITS") ?? 160);
const silent: Reporter = { emit() {}, progress() {}, close() {} };

Deno.test({
  name:
    "toy: after each of a seeded sequence of edits, the plan predicts exactly what the run does",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const seed = Number(Deno.env.get("LATENTFORGE_PLAN_SEED") ?? Date.now() % 100_000);
  console.log(`plan differential (toy): seed ${seed}, ${EDITS} edits`);
  const rnd = seededRandom(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const project = await PlanProject.create(
    [`${TOY}/pipeline.ts`, ...TASKS.map((t) => `${TOY}/tasks/${t}.ts`)],
    ["lib", "deno.json"],
  );
  let weightsBody = "5";
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(weightsBody),
  );
  const weightsUrl = `http://127.0.0.1:${server.addr.port}/weights.txt`;
  const records = await openRecords(project.cache);
  try {
    const { toyPipeline } = await project.import<{ toyPipeline: Pipeline<unknown> }>(
      `${TOY}/pipeline.ts`,
    );
    const store = new ObjectStore(project.cache);
    const versions = new Map<string, string>();
    const graph = () =>
      new TaskGraph(
        toyPipeline.tasks.map((t) =>
          ({ ...t, version: versions.get(t.name) ?? t.version }) as Task
        ),
      );
    let raw: Record<string, unknown> = {
      toy: { count: 12, out: project.path("out.txt") },
    };
    const history: Record<string, unknown>[] = [];
    const plan = (config: unknown, opts: { limit?: number; force?: string[] }, dryRun: boolean) =>
      runPipeline({
        graph: graph(),
        targets: ["total"],
        config,
        store,
        records,
        reporter: silent,
        signal: new AbortController().signal,
        dryRun,
        ...opts,
      });
    const parse = (r: unknown) => toyPipeline.schema.safeParse(r);
    const first = parse(raw);
    assert(first.success);
    assertEquals((await plan(first.data, {}, false)).exitCode, 0);

    const sequence = new PlanSequence({ plan, records, tasks: TASKS, random: rnd });
    const problems = sequence.problems;
    const counts = new Map<string, number>();
    let cliChecks = 0;
    for (let step = 1; step <= EDITS; step++) {
      const opts: { limit?: number; force?: string[] } = {};
      let label = "";
      let expectNothing = false;
      let unpinned = false;
      const kind = pick([
        "field",
        "field",
        "field",
        "field",
        "weights",
        "weights",
        "source",
        "version",
        "limit",
        "force",
        "revert",
      ]);
      const toy = () => raw.toy as Record<string, unknown>;
      if (kind === "field") {
        const config = parse(raw);
        assert(config.success);
        const fields = configFields(toyPipeline.schema, config.data);
        const field = pick(fields);
        const value = pick(field.alternatives);
        const next = withField(raw, field.path, value);
        if (!parse(next).success) continue;
        raw = next;
        label = `set ${field.path.join(".")}=${JSON.stringify(value)}`;
        expectNothing = RUN_ONLY.some((p) => field.path.join(".").startsWith(p));
      } else if (kind === "weights") {
        const how = pick(["bytes", "same-bytes-path", "path", "url", "pinned-url", "none"]);
        const file = project.path(`weights-${step}.txt`);
        const current = toy().weights as { path?: string; url?: string } | undefined;
        if (how === "bytes" && current?.path) {
          await Deno.writeTextFile(current.path, String(Math.floor(rnd() * 9)));
          label = "weights: new bytes at the same path";
        } else if (how === "same-bytes-path" && current?.path) {
          await Deno.copyFile(current.path, file);
          toy().weights = { path: file };
          label = "weights: another path to identical bytes";
          expectNothing = true;
        } else if (how === "url") {
          weightsBody = String(Math.floor(rnd() * 3));
          toy().weights = { url: weightsUrl };
          label = `weights: unpinned URL serving ${weightsBody}`;
          unpinned = true;
        } else if (how === "pinned-url") {
          weightsBody = String(Math.floor(rnd() * 3));
          const sha256 = createHash("sha256").update(weightsBody).digest("hex");
          toy().weights = { url: weightsUrl, sha256 };
          label = `weights: URL pinned to ${weightsBody}`;
        } else if (how === "none") {
          delete toy().weights;
          label = "weights: none";
        } else {
          await Deno.writeTextFile(file, String(Math.floor(rnd() * 9)));
          toy().weights = { path: file };
          label = "weights: a new file";
        }
      } else if (kind === "source") {
        // A comment changes nothing a key holds; a new constant changes the task's code.
        const task = pick(TASKS);
        const comment = rnd() < 0.5;
        const line = comment ? `// edit ${step}\n` : `export const EDIT_${step} = ${step};\n`;
        await Deno.writeTextFile(project.path(`${TOY}/tasks/${task}.ts`), line, { append: true });
        label = `${comment ? "a comment" : "a constant"} added to ${task}`;
        expectNothing = comment;
      } else if (kind === "version") {
        const task = pick(TASKS);
        const file = project.path(`${TOY}/tasks/${task}.ts`);
        const was = versions.get(task) ?? "1";
        const now = `${was}.${step}`;
        const text = await Deno.readTextFile(file);
        await Deno.writeTextFile(file, text.replace(`version: "${was}"`, `version: "${now}"`));
        versions.set(task, now);
        label = `bump the version of ${task} to ${now}`;
      } else if (kind === "limit") {
        opts.limit = 1 + Math.floor(rnd() * 10);
        label = `--limit ${opts.limit}`;
      } else if (kind === "force") {
        opts.force = [pick(TASKS)];
        label = `--force ${opts.force[0]}`;
      } else if (history.length) {
        raw = structuredClone(pick(history));
        label = "back to an earlier config";
      } else continue;
      if (toy().weights && (toy().weights as { url?: string; sha256?: string }).url) {
        unpinned ||= !(toy().weights as { sha256?: string }).sha256;
      }
      history.push(structuredClone(raw));
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
      const config = parse(raw);
      assert(config.success, label);

      const where = `step ${step} (${label})`;
      const viaCli = step % 40 === 0;
      if (viaCli) cliChecks++;
      const { plan: predicted } = await sequence.step(
        where,
        config.data,
        opts,
        { nothing: expectNothing, unpinned },
        viaCli ? (plan) => compareWithCli(project, raw, opts, plan, where) : undefined,
      );
      if (unpinned) {
        // What depends on an unpinned URL is never up to date in a plan.
        const offset = predictions(predicted).get("offset")!;
        const items = predicted.tasks.get("offset")!.items.length;
        if (!offset.unlisted && items > 0 && offset.run.size + offset.may.size === 0) {
          sequence.problems.push(`${where}: offset reads an unpinned URL, the plan says cached`);
        }
      }
      // The items a --limit left out run next, before an edit that must rerun nothing.
      if (opts.limit) {
        await sequence.step(`${where}, then without it`, config.data, {}, { unpinned });
      }
    }
    console.log(
      `plan differential (toy): ${[...counts.values()].reduce((a, b) => a + b, 0)} edits ` +
        `(${[...counts].map(([k, n]) => `${k} ${n}`).join(", ")}), ${cliChecks} through the CLI`,
    );
    assertEquals(problems.slice(0, 20), [], `seed ${seed}: ${problems.length} disagreements`);
  } finally {
    records.close();
    await server.shutdown();
    await project.cleanup();
  }
});

/**
 * The same plan through the command line: `run --dry-run --json` names the same items, and
 * `explain … --json` of one of them gives the same verdict.
 */
async function compareWithCli(
  project: PlanProject,
  raw: unknown,
  opts: { limit?: number; force?: string[] },
  plan: RunResult,
  label: string,
): Promise<string[]> {
  const configPath = project.path("cli-config.json");
  await Deno.writeTextFile(configPath, JSON.stringify(raw));
  const flags = [
    "--config",
    configPath,
    "--cache",
    project.cache,
    ...(opts.limit ? ["--limit", String(opts.limit)] : []),
    ...(opts.force ?? []).flatMap((t) => ["--force", t]),
  ];
  const main = `${TOY}/pipeline.ts`;
  const problems: string[] = [];
  const dry = await project.cli(main, ["run", "--dry-run", "--json", ...flags]);
  const fromCli = new Set(
    dry.events.filter((e) => e.event === "plan").map((e) => `${e.task} ${e.item} ${e.verdict}`),
  );
  const inProcess = new Set<string>();
  for (const [task, p] of predictions(plan)) {
    for (const id of p.run) inProcess.add(`${task} ${id} run`);
    for (const id of p.may) inProcess.add(`${task} ${id} may`);
  }
  if ([...fromCli].sort().join("|") !== [...inProcess].sort().join("|")) {
    problems.push(
      `${label}: --dry-run through the CLI planned ${fromCli.size} items, ` +
        `in-process ${inProcess.size} (exit ${dry.code}: ${dry.stderr.slice(0, 300)})`,
    );
  }
  const t = plan.tasks.get("offset")!;
  if (!t.unlisted && t.items.length) {
    const id = t.items[0];
    const why = await project.cli(main, ["explain", "offset", id, "--json", ...flags]);
    const verdict = why.code === 0 ? JSON.parse(why.stdout).verdict : `exit ${why.code}`;
    const expected = t.plans.get(id)?.verdict ?? "cached";
    if (verdict !== expected) {
      problems.push(`${label}: explain offset ${id} --json says ${verdict}, the plan ${expected}`);
    }
  }
  return problems;
}

/**
 * The plan is the run, on the real pipeline at the demo's scale (a few small images from the
 * mirror, the demo VAE, two optimizer steps): first the cases users met (a decoder at another
 * path, a decoder re-exported at the same path, a learning rate alone, `explain --json` to a
 * pipe and a file, `status --limit`), then a seeded random sequence of edits — config fields
 * found by walking the config schema, the decoder's bytes and path, task source files and
 * versions, library modules (a comment or a new layout: nothing reruns; a new constant: exactly
 * the tasks whose code holds it), an npm package's version in the lock file, `--limit`,
 * `--force` — and, on a folder dataset, one input image. After each, what the plan predicts is
 * what the run executes.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import {
  configFields,
  PlanSequence,
  predictions,
  type RunFlags,
  withField,
} from "./fixtures/plan_check.ts";
import { seededRandom } from "../lib/base/random.ts";
import { PlanProject } from "./fixtures/plan_project.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { syntheticImage } from "./fixtures/synthetic_images.ts";
import { writeDemoVae, writeTinyVae } from "./fixtures/vae.ts";
import { runPipeline, type RunResult } from "../lib/dag/plan.ts";
import { type CodeIdentity, CodeReader } from "../lib/dag/code_identity.ts";
import { TaskGraph } from "../lib/dag/graph.ts";
import type { Reporter } from "../lib/dag/events.ts";
import type { Pipeline, Task } from "../lib/dag/task.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { openRecords } from "../lib/store/records.ts";

const TASKS = [
  "fetch-json",
  "fetch-images",
  "verify-sizes",
  "label-split",
  "preprocess",
  "encode",
  "optimize",
  "package",
];
const TASK_FILES = [
  "fetch_json",
  "fetch_images",
  "verify_sizes",
  "label_split",
  "preprocess",
  "encode",
  "optimize",
  "package",
];
/** Fields that say where or how things run, or when: editing them must rerun nothing. */
const RUN_ONLY = [
  "executor",
  "schedule",
  "model.providers",
  "model.threads",
  "download.concurrency_per_host",
  "download.stall_s",
  "download.attempts",
  "download.quota_backoff_s",
  "download.materialize",
  "dataset.mirrors",
  "optimize.batch_size",
  "optimize.checkpoint_every",
];
const EDITS = Number(Deno.env.get("LATENTFORGE_PLAN_DEMO_EDITS") ?? 30);
const FOLDER_EDITS = Number(Deno.env.get("LATENTFORGE_PLAN_FOLDER_EDITS") ?? 6);
const silent: Reporter = { emit() {}, progress() {}, close() {} };
const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

Deno.test({
  name: "demo: the cases users met, then a seeded sequence of edits, plan exactly what runs",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const seed = Number(Deno.env.get("LATENTFORGE_PLAN_SEED") ?? Date.now() % 100_000);
  console.log(`plan differential (demo): seed ${seed}, ${EDITS} + ${FOLDER_EDITS} edits`);
  const rnd = seededRandom(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
  const project = await PlanProject.create(
    ["pipeline.ts", "lib", "deno.lock", ...TASK_FILES.map((t) => `tasks/${t}.ts`)],
    ["config", "deno.json"],
  );
  const mirror = await startMirror({ count: 6, imageSize: 48, seed: 5 });
  const records = await openRecords(project.cache);
  try {
    const { pipeline } = await project.import<{ pipeline: Pipeline<unknown> }>("pipeline.ts");
    const vae = await writeDemoVae(project.path("vae"));
    const decoders = [vae.decoder];
    for (const s of [11, 12]) {
      decoders.push((await writeTinyVae(project.path(`vae-${s}`), { seed: s })).decoder);
    }
    const decoderPath = project.path("decoder.onnx");
    await Deno.copyFile(vae.decoder, decoderPath);
    const store = new ObjectStore(project.cache);
    const versions = new Map<string, string>();
    const graph = () =>
      new TaskGraph(
        pipeline.tasks.map((t) => ({ ...t, version: versions.get(t.name) ?? t.version }) as Task),
      );
    const plan = (config: unknown, opts: RunFlags, dryRun: boolean) =>
      runPipeline({
        graph: graph(),
        targets: ["package"],
        config,
        store,
        records,
        reporter: silent,
        signal: new AbortController().signal,
        dryRun,
        ...opts,
      });
    let raw: Record<string, unknown> = {
      dataset: { kind: "ffhq", spec: { url: mirror.specUrl, sha256: sha256(mirror.specBytes) } },
      download: { concurrency_per_host: 4, stall_s: 10, attempts: 3 },
      labels: {
        source: { url: mirror.labelsUrl, sha256: sha256(mirror.labelsCsv) },
        split_by: ["gender"],
      },
      preprocess: { size: 32 },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: decoderPath },
        scaling_factor: 1,
        providers: ["cpu"],
        threads: 1,
      },
      optimize: { max_steps: 2, patience: 2, batch_size: 4, checkpoint_every: 1 },
      package: { out_dir: project.path("out"), samples: 2, formats: ["npz"] },
    };
    const parse = (r: unknown) => {
      const p = pipeline.schema.safeParse(r);
      assert(p.success, JSON.stringify(r));
      return p.data;
    };
    const sequence = new PlanSequence({ plan, records, tasks: TASKS, random: rnd });
    const problems = sequence.problems;
    const first = await plan(parse(raw), {}, false);
    assertEquals(first.exitCode, 0, [...first.tasks].map(([n, t]) => `${n}: ${t.reason}`).join());

    // ---- the cases users met ----
    const cfg = project.path("config.json");
    const write = async (r: unknown) => await Deno.writeTextFile(cfg, JSON.stringify(r));
    const flags = ["--config", cfg, "--cache", project.cache];
    // Another decoder file (other bytes): optimize reruns, and the plan says so.
    const other = project.path("other-decoder.onnx");
    await Deno.copyFile(decoders[1], other);
    raw = withField(raw, ["model", "decoder", "path"], other);
    await write(raw);
    const dry = await project.cli("pipeline.ts", ["run", "--dry-run", "--json", ...flags]);
    assertEquals(dry.code, 0, dry.stderr);
    const planned = dry.events.filter((e) => e.event === "plan" && e.task === "optimize");
    assertEquals(planned.length, 6, dry.stdout);
    const why = await project.cli("pipeline.ts", ["explain", "optimize", "2", ...flags]);
    assertStringIncludes(why.stdout, "optimize 2: would rerun\n  input decoder changed ");
    let step = await sequence.step("decoder at another path", parse(raw), {});
    assertEquals(step.run.tasks.get("optimize")!.executed.length, 6);
    // Its weights change no latent the encoder gives (it takes the same 4 channels).
    assertEquals(step.run.tasks.get("encode")!.executed.length, 0);
    assertEquals(step.plan.tasks.get("encode")!.plans.size, 0);
    // The decoder re-exported at the same path.
    await Deno.copyFile(decoders[2], other);
    step = await sequence.step("decoder re-exported at the same path", parse(raw), {});
    assertEquals(step.run.tasks.get("optimize")!.executed.length, 6);
    assertEquals(step.run.tasks.get("encode")!.executed.length, 0);
    // Only the learning rate: the reasons name it and nothing else.
    raw = withField(raw, ["optimize", "lr"], 0.05);
    step = await sequence.step("optimize.lr alone", parse(raw), {});
    for (const [id, p] of step.plan.tasks.get("optimize")!.plans) {
      assertEquals(p.reasons.map((r) => r.text), ["config optimize.lr: 0.1 → 0.05"], id);
    }
    // explain --json to a pipe and to a file.
    await write(raw);
    const piped = await project.cli("pipeline.ts", [
      "explain",
      "optimize",
      "4",
      "--json",
      ...flags,
    ]);
    assertEquals(piped.code, 0, piped.stderr);
    assertEquals(JSON.parse(piped.stdout).verdict, "cached");
    const file = project.path("explain.json");
    const shell = await new Deno.Command("sh", {
      args: [
        "-c",
        `"${Deno.execPath()}" run --quiet --allow-all --unstable-kv --unstable-cron ` +
        `--config "${join(Deno.cwd(), "deno.json")}" "${project.path("pipeline.ts")}" ` +
        `explain optimize 4 --json --config "${cfg}" --cache "${project.cache}" > "${file}"`,
      ],
      cwd: project.dir,
    }).output();
    assertEquals(shell.code, 0, new TextDecoder().decode(shell.stderr));
    assertEquals(JSON.parse(await Deno.readTextFile(file)).item, "4");
    // run --limit 3, then status and explain with the same --limit agree with it.
    raw = withField(raw, ["preprocess", "size"], 40);
    step = await sequence.step("--limit 3", parse(raw), { limit: 3 });
    await write(raw);
    const status = await project.cli("pipeline.ts", ["status", "--json", "--limit", "3", ...flags]);
    assertEquals(status.code, 0, status.stderr);
    const rows = JSON.parse(status.stdout).tasks as {
      task: string;
      items: number;
      cached: number;
    }[];
    for (const task of ["preprocess", "encode", "optimize"]) {
      const row = rows.find((r) => r.task === task)!;
      assertEquals([row.items, row.cached], [3, 3], task);
    }
    const limited = step.run.tasks.get("optimize")!.executed[0];
    const one = await project.cli("pipeline.ts", [
      "explain",
      "optimize",
      limited,
      "--json",
      "--limit",
      "3",
      ...flags,
    ]);
    assertEquals(JSON.parse(one.stdout).verdict, "cached", one.stderr);
    await sequence.step("then without --limit", parse(raw), {});

    // ---- a seeded sequence of edits ----
    const counts = new Map<string, number>();
    const history: Record<string, unknown>[] = [structuredClone(raw)];
    for (let n = 1; n <= EDITS; n++) {
      const opts: RunFlags = {};
      let label = "";
      let nothing = false;
      const kind = pick([
        "field",
        "field",
        "field",
        "field",
        "field",
        "decoder",
        "source",
        "version",
        "library",
        "library",
        "npm",
        "limit",
        "force",
        "revert",
      ]);
      let check: (plan: RunResult) => Promise<string[]> = () => Promise.resolve([]);
      if (kind === "field") {
        const fields = configFields(pipeline.schema, parse(raw));
        const field = pick(fields);
        const value = pick(field.alternatives);
        const next = withField(raw, field.path, value);
        if (!pipeline.schema.safeParse(next).success || !runnable(next)) continue;
        raw = next;
        label = `set ${field.path.join(".")}=${JSON.stringify(value)}`;
        nothing = RUN_ONLY.some((p) => field.path.join(".").startsWith(p));
      } else if (kind === "decoder") {
        const path = (raw.model as { decoder: { path: string } }).decoder.path;
        if (rnd() < 0.5) {
          await Deno.copyFile(pick(decoders), path);
          label = "decoder: new bytes at the same path";
        } else {
          const copy = project.path(`decoder-${n}.onnx`);
          await Deno.copyFile(path, copy);
          raw = withField(raw, ["model", "decoder", "path"], copy);
          label = "decoder: another path to identical bytes";
          nothing = true;
        }
      } else if (kind === "source") {
        const file = `tasks/${pick(TASK_FILES)}.ts`;
        await project.addConstant(file, n);
        label = `a constant added to ${file}`;
        check = rerunsExactly(pipeline, `source ${file} changed`, (c) => file in c.modules);
      } else if (kind === "version") {
        const i = Math.floor(rnd() * TASKS.length);
        const file = project.path(`tasks/${TASK_FILES[i]}.ts`);
        const text = await Deno.readTextFile(file);
        const was = /version: "([^"]+)"/.exec(text)![1];
        const now = `${was}.${n}`;
        await Deno.writeTextFile(file, text.replace(`version: "${was}"`, `version: "${now}"`));
        versions.set(TASKS[i], now);
        label = `bump the version of ${TASKS[i]} to ${now}`;
      } else if (kind === "library") {
        const module = pick(await libraryModules(pipeline));
        const how = pick(["comment", "format", "constant"]);
        if (how === "comment") await project.comment(module, n);
        else if (how === "format") await project.reformat(module, n);
        else await project.addConstant(module, n);
        label = `library ${module}: ${how}`;
        nothing = how !== "constant";
        if (how === "constant") {
          check = rerunsExactly(pipeline, `source ${module} changed`, (c) => module in c.modules);
        }
      } else if (kind === "npm") {
        const name = pick(["onnxruntime-node", "sharp", "csv-parse"]);
        const { was, now } = await project.bumpNpm(name, n);
        label = `npm ${name} ${was} → ${now} in the lock file`;
        check = rerunsExactly(pipeline, `${name} ${was} → ${now}`, (c) => name in c.npm);
      } else if (kind === "limit") {
        opts.limit = 1 + Math.floor(rnd() * 6);
        label = `--limit ${opts.limit}`;
      } else if (kind === "force") {
        opts.force = [pick(TASKS)];
        label = `--force ${opts.force[0]}`;
      } else {
        raw = structuredClone(pick(history));
        label = "back to an earlier config";
      }
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
      const { run } = await sequence.step(
        `step ${n} (${label})`,
        parse(raw),
        opts,
        { nothing },
        check,
      );
      const broken = [...run.tasks].filter(([, t]) => t.status === "failed");
      if (broken.length) {
        // A config this machine or these models cannot run (the plan said so too): the next
        // edits start again from the last one that ran.
        const [name, t] = broken[0];
        console.log(`step ${n} (${label}): ${name} failed (${t.reason}); back to the last config`);
        raw = structuredClone(history[history.length - 1]);
        await sequence.step(`step ${n}, undone`, parse(raw), {});
        continue;
      }
      history.push(structuredClone(raw));
      // The items a --limit left out run next, before an edit that must rerun nothing.
      if (opts.limit) await sequence.step(`step ${n} (${label}), then without it`, parse(raw), {});
    }

    // ---- a folder dataset: one input image at a time ----
    const folder = project.path("images");
    await Deno.mkdir(folder);
    for (let i = 0; i < 6; i++) {
      await Deno.writeFile(join(folder, `img${i}.png`), (await syntheticImage(i, size(48))).png);
    }
    raw = {
      ...structuredClone(history[0]),
      dataset: { kind: "folder", path: folder },
      labels: null,
    };
    await sequence.step("a folder dataset", parse(raw), {});
    for (let n = 1; n <= FOLDER_EDITS; n++) {
      const i = Math.floor(rnd() * 6);
      await Deno.writeFile(
        join(folder, `img${i}.png`),
        (await syntheticImage(100 + n, size(40 + 8 * Math.floor(rnd() * 3)))).png,
      );
      counts.set("image", (counts.get("image") ?? 0) + 1);
      const { run } = await sequence.step(`image ${n}: img${i}.png rewritten`, parse(raw), {});
      const ran = run.tasks.get("fetch-images")!.executed;
      if (ran.length !== 1) problems.push(`image ${n}: fetch-images ran ${ran.length} items`);
    }
    console.log(
      `plan differential (demo): ${[...counts.values()].reduce((a, b) => a + b, 0) + 6} edits ` +
        `(${[...counts].map(([k, v]) => `${k} ${v}`).join(", ")}, and 6 scripted)`,
    );
    assertEquals(problems.slice(0, 20), [], `seed ${seed}: ${problems.length} disagreements`);
    assert(predictions(first).size === TASKS.length);
  } finally {
    records.close();
    await mirror.close();
    await project.cleanup();
  }
});

/** The library modules (not task files) the tasks' keys hold, as paths of the copy. */
async function libraryModules(pipeline: Pipeline<unknown>): Promise<string[]> {
  const reader = new CodeReader();
  const out = new Set<string>();
  for (const task of pipeline.tasks) {
    for (const m of Object.keys((await reader.read(task.source)).identity.modules)) {
      if (m.startsWith("lib/") && m.endsWith(".ts")) out.add(m);
    }
  }
  return [...out].sort();
}

/**
 * A check of a plan: the tasks whose code `holds` the edit plan to rerun because of `reason`
 * (each of their items, unless they cannot be listed yet), and no other task names it.
 */
function rerunsExactly(
  pipeline: Pipeline<unknown>,
  reason: string,
  holds: (code: CodeIdentity) => boolean,
): (plan: RunResult) => Promise<string[]> {
  return async (plan) => {
    const reader = new CodeReader();
    const problems: string[] = [];
    for (const task of pipeline.tasks) {
      const t = plan.tasks.get(task.name)!;
      const held = holds((await reader.read(task.source)).identity);
      const naming = [...t.plans.values()].filter((p) => p.reasons.some((r) => r.text === reason));
      if (held && !t.unlisted && naming.length !== t.counts.total) {
        problems.push(`${task.name}: ${naming.length} of ${t.counts.total} items say "${reason}"`);
      }
      if (!held && naming.length > 0) problems.push(`${task.name} says "${reason}"`);
    }
    return problems;
  };
}

function size(n: number) {
  return { width: n, height: n };
}

/** A config the demo pipeline can run on this machine (the CPU provider is kept). */
function runnable(raw: Record<string, unknown>): boolean {
  const providers = (raw.model as { providers?: string[] }).providers;
  return !providers || providers.includes("cpu");
}

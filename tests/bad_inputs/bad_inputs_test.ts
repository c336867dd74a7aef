/**
 * Runs every row of the bad-input corpus (cases.ts) through the real command line: the exit
 * code, the words of the message, no stack trace, and — past the first stage — no completed
 * work lost: a rerun with the corrected input redoes nothing that had finished.
 *
 * Rows of one group share a project (config, cache), so each row costs one or two CLI runs.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "../fixtures/assert.ts";
import { startMirror } from "../fixtures/mirror.ts";
import { PipelineProject } from "../fixtures/pipeline_project.ts";
import { type Ran, tasksRan } from "../fixtures/project.ts";
import { writeDemoVae } from "../fixtures/vae.ts";
import { type BadInputCase, type Bench, CASES, type Group } from "./cases.ts";
import { HTML_PAGE, solidPng } from "./generate.ts";

type Config = Record<string, Record<string, unknown>>;

/** The group's config with a row's fields laid over it, one section deep. */
function overlay(base: Config, patch: Record<string, unknown>): Config {
  const out: Config = structuredClone(base);
  for (const [section, fields] of Object.entries(patch)) {
    out[section] = { ...(out[section] ?? {}), ...(fields as Record<string, unknown>) };
  }
  return out;
}

/** Neither a stack trace nor an uncaught error in anything the command printed. */
function assertNoCrash(r: Ran, row: string): void {
  const text = r.stderr + r.stdout;
  assert(!/^\s{4}at /m.test(text), `${row}: a stack trace was printed:\n${r.stderr}`);
  assert(!text.includes("Uncaught"), `${row}: an uncaught error:\n${r.stderr}`);
}

/** Every message of a run: stderr, plain stdout and the reasons and logs of `--json` events. */
function messages(r: Ran): string {
  const fromEvents = r.events.map((e) =>
    [e.task, e.item, e.reason, e.message, e.error].filter((v) => v !== undefined).join(" ")
  );
  return [r.stderr, r.stdout, ...fromEvents].join("\n");
}

/** Tasks whose items (or action) ran in a `--json` run, with counts; cached ones are left out. */
function ranTasks(r: Ran): Record<string, number> {
  return Object.fromEntries([...tasksRan(r)].filter(([, n]) => n > 0));
}

/** The first failure reason or error line, to show what the user would read. */
function firstMessage(r: Ran): string {
  const failed = r.events.find((e) => e.reason !== undefined && e.status !== "ok");
  if (failed) return `${failed.task} ${failed.item ?? ""}: ${failed.reason}`;
  return r.stderr.trim().split("\n").map((l) => l.trim()).join(" / ") || "(no message)";
}

interface GroupSetup {
  bench: Bench;
  base: Config;
  /** Command of a good run made before the rows, so later rows find its results cached. */
  baseline?: string;
  /** Tasks whose completed work the rerun after a row's fix must not redo. */
  kept: string[];
  close(): Promise<void>;
}

const MODEL_STUB = {
  encoder: { path: "/nonexistent/vae_encoder.onnx" },
  decoder: { path: "/nonexistent/vae_decoder.onnx" },
  scaling_factor: 1,
  providers: ["cpu"],
};

function newBench(dir: string): Bench {
  return {
    dir,
    write: async (name, data) => {
      const path = join(dir, name);
      if (typeof data === "string") await Deno.writeTextFile(path, data);
      else await Deno.writeFile(path, data);
      return path;
    },
    spec: {},
    labelsCsv: "",
    origin: "",
    vae: { encoder: "", decoder: "" },
  };
}

async function setUp(group: Group, dir: string): Promise<GroupSetup> {
  const bench = newBench(dir);
  const none = () => Promise.resolve();
  switch (group) {
    case "config":
    case "spec": {
      const mirror = await startMirror({ count: 4, imageSize: 16, seed: 3 });
      bench.spec = JSON.parse(new TextDecoder().decode(mirror.specBytes));
      await mirror.close();
      const spec = await bench.write("good.json", JSON.stringify(bench.spec, null, 1));
      return {
        bench,
        base: { dataset: { kind: "ffhq", spec: { path: spec } }, model: MODEL_STUB },
        kept: [],
        close: none,
      };
    }
    case "labels": {
      const mirror = await startMirror({ count: 4, imageSize: 16, seed: 3 });
      bench.spec = JSON.parse(new TextDecoder().decode(mirror.specBytes));
      bench.labelsCsv = mirror.labelsCsv;
      const good = await bench.write("good.csv", mirror.labelsCsv);
      return {
        bench,
        base: {
          dataset: { kind: "ffhq", spec: { url: mirror.specUrl } },
          labels: { source: { path: good }, max_missing: 0 },
          model: MODEL_STUB,
        },
        baseline: "label-split",
        kept: ["fetch-json", "fetch-images", "verify-sizes", "label-split"],
        close: () => mirror.close(),
      };
    }
    case "images": {
      const files: Record<string, Uint8Array<ArrayBuffer>> = {
        "/good0.png": await solidPng(16, 40),
        "/good1.png": await solidPng(16, 200),
      };
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
        const path = new URL(req.url).pathname;
        const body = files[path] ?? (path === "/page.png" ? HTML_PAGE : null);
        // The page claims to be a PNG, as misconfigured hosts and login walls do.
        return body === null
          ? new Response("not found", { status: 404 })
          : new Response(body, { headers: { "content-type": "image/png" } });
      });
      bench.origin = `http://127.0.0.1:${server.addr.port}`;
      return {
        bench,
        // One retry: an HTML answer may be a passing quota page, but this one never changes.
        base: { download: { attempts: 2 }, preprocess: { size: 16 }, model: MODEL_STUB },
        kept: ["fetch-images", "verify-sizes", "preprocess"],
        close: () => server.shutdown(),
      };
    }
    case "onnx": {
      const images = join(dir, "images");
      await Deno.mkdir(images);
      for (let i = 0; i < 3; i++) {
        await bench.write(`images/img${i}.png`, await solidPng(16, 30 + 80 * i));
      }
      bench.vae = await writeDemoVae(join(dir, "vae"));
      return {
        bench,
        base: {
          dataset: { kind: "folder", path: images },
          preprocess: { size: 16 },
          model: {
            encoder: { path: bench.vae.encoder },
            decoder: { path: bench.vae.decoder },
            scaling_factor: 1,
            providers: ["cpu"],
            threads: 1,
          },
          optimize: { max_steps: 3, batch_size: 4 },
        },
        baseline: "encode",
        kept: ["fetch-images", "verify-sizes", "preprocess", "encode"],
        close: none,
      };
    }
  }
}

const GROUPS: Group[] = ["config", "spec", "labels", "images", "onnx"];

for (const group of GROUPS) {
  const rows = CASES.filter((c) => c.group === group);
  Deno.test(`bad inputs: ${group} (${rows.length} rows)`, async (t) => {
    const dir = await Deno.makeTempDir({ prefix: `latentforge-bad-${group}-` });
    const cleanups: (() => Promise<void>)[] = [];
    try {
      const setup = await setUp(group, dir);
      cleanups.push(() => setup.close());
      const project = await PipelineProject.create(setup.base);
      cleanups.push(() => project.cleanup());
      if (setup.baseline) {
        const r = await project.run(["run", setup.baseline, "--json"]);
        assertEquals(r.code, 0, `baseline run of ${group}: ${r.stderr}`);
      }
      for (const row of rows) {
        await t.step(row.name, () => runRow(row, setup, project));
      }
    } finally {
      for (const cleanup of cleanups.reverse()) await cleanup();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

async function runRow(row: BadInputCase, setup: GroupSetup, project: PipelineProject) {
  const started = performance.now();
  await project.writeConfig(overlay(setup.base, await row.input(setup.bench)));
  const r = await project.run(["run", row.target, "--json"]);
  const text = messages(r);
  assertEquals(r.code, row.code, `${row.name}: exit code; output:\n${text}`);
  assertNoCrash(r, row.name);
  for (const word of row.words) {
    assertStringIncludes(text, word, `${row.name}: expected ${JSON.stringify(word)} in:\n${text}`);
  }
  row.accepted?.(r);
  if (row.code !== 0 && setup.kept.length) {
    // Whatever the bad run completed (and the baseline before it) survives the fix.
    const fixed = row.fix ? await row.fix(setup.bench) : {};
    await project.writeConfig(overlay(setup.base, fixed));
    const again = await project.run(["run", row.target, "--json"]);
    assertEquals(again.code, 0, `${row.name}: rerun after the fix:\n${again.stderr}`);
    const redone = Object.entries(ranTasks(again)).filter(([task]) => setup.kept.includes(task));
    assertEquals(redone, [], `${row.name}: completed work was redone after the fix`);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`exit ${r.code} in ${seconds} s: ${firstMessage(r)}`);
}

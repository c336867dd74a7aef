/**
 * Every module a task loads while it runs is in its key's set of modules, or in the engine:
 * each task of the real pipeline runs on its own (`run T --force T`, everything upstream
 * cached) under V8 coverage, which lists every module the process loaded — Worker scripts and
 * `import()`ed modules included — and what it loaded beyond the process's static imports must
 * be in that task's set.
 */
import { join } from "node:path";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { mirroredConfig, REPO, tasksRan } from "./fixtures/project.ts";
import { writeDemoVae } from "./fixtures/vae.ts";
import { CodeReader, ENGINE_FOLDERS } from "../lib/dag/code_identity.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { openRecords } from "../lib/store/records.ts";
import { pipeline } from "../pipeline.ts";

/**
 * The repository's modules a coverage directory says the process loaded (npm packages' files
 * aside: a package is keyed by its name and version).
 */
async function loaded(dir: string): Promise<Set<string>> {
  const root = new URL(`file://${REPO}`).href;
  const out = new Set<string>();
  for await (const e of Deno.readDir(dir)) {
    const { url } = JSON.parse(await Deno.readTextFile(join(dir, e.name))) as { url: string };
    if (url.startsWith(root) && !url.startsWith(`${root}node_modules/`)) {
      out.add(url.slice(root.length));
    }
  }
  return out;
}

/** What `pipeline.ts` loads by its static imports (type-only ones aside): every process does. */
async function staticImports(): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "pipeline.ts"],
    cwd: REPO,
    stdout: "piped",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string; dependencies?: { code?: { specifier: string } }[] }[];
    redirects: Record<string, string>;
    roots: string[];
  };
  const root = new URL(`file://${REPO}`).href;
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const stack = [...info.roots];
  while (stack.length > 0) {
    const s = info.redirects[stack.at(-1)!] ?? stack.at(-1)!;
    stack.pop();
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of bySpecifier.get(s)?.dependencies ?? []) {
      if (d.code) stack.push(d.code.specifier);
    }
  }
  return new Set([...seen].filter((s) => s.startsWith(root)).map((s) => s.slice(root.length)));
}

/** Removes the downloaded images from the store, so that fetch-images downloads them again. */
async function forgetImages(cache: string): Promise<void> {
  const store = new ObjectStore(cache);
  const records = await openRecords(cache);
  try {
    for (const rec of (await records.actions("fetch-images")).values()) {
      await store.remove(rec.objects.image);
    }
  } finally {
    records.close();
  }
}

Deno.test({
  name: "each task, run on its own, loads no module beyond its key's set and the engine",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const mirror = await startMirror({ count: 4, imageSize: 32, seed: 3 });
  const dir = await Deno.makeTempDir({ prefix: "latentforge-loads-" });
  let project: PipelineProject | undefined;
  try {
    const vae = await writeDemoVae(join(dir, "vae"));
    project = await PipelineProject.create(mirroredConfig({
      preprocess: { size: 32 },
      model: { scaling_factor: 1, providers: ["cpu"], threads: 1 },
      optimize: { max_steps: 2, patience: 2 },
      package: { formats: ["npz"], samples: 1 },
    }, { mirror, vae }));
    const first = await project.run(["run", "--json"]);
    assertEquals(first.code, 0, first.stderr);
    const always = await staticImports();
    const reader = new CodeReader();
    const engine = ENGINE_FOLDERS.map((f) => `lib/${f}/`);
    const problems: string[] = [];
    let runTimeOnly = 0;
    for (const task of pipeline.tasks) {
      // Downloads hash in a Worker: with the images gone from the store, they are downloaded.
      if (task.name === "fetch-images") await forgetImages(project.cache);
      const coverage = join(dir, `coverage-${task.name}`);
      const r = await project.run(["run", task.name, "--force", task.name, "--json"], {
        DENO_COVERAGE_DIR: coverage,
      });
      assertEquals(r.code, 0, `${task.name}: ${r.stderr}`);
      assert((tasksRan(r).get(task.name) ?? 0) > 0, `${task.name} ran nothing`);
      const set = Object.keys((await reader.read(task.source)).identity.modules);
      for (const m of await loaded(coverage)) {
        if (always.has(m) || engine.some((e) => m.startsWith(e))) continue;
        runTimeOnly++;
        if (!set.includes(m)) problems.push(`${task.name} loaded ${m}, which its key leaves out`);
      }
    }
    assertEquals(problems, []);
    // fetch-images hashes its downloads in a Worker: that was loaded at run time only.
    assert(runTimeOnly > 0, "no module was loaded at run time only");
  } finally {
    await project?.cleanup();
    await Deno.remove(dir, { recursive: true });
    await mirror.close();
  }
});

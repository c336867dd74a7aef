import { withoutRunSection } from "../lib/report/run_section.ts";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { slurmRequirement, slurmSuite } from "./fixtures/slurm.ts";
import { writeDemoVae } from "./fixtures/vae.ts";
import { mirroredConfig, tasksRan } from "./fixtures/project.ts";

const slurmCase = slurmSuite("the demo pipeline on Slurm", await slurmRequirement());

const DEMO_CONFIG = fileURLToPath(new URL("../config/demo.json", import.meta.url));
const REPO = fileURLToPath(new URL("../", import.meta.url));
const ITEMS = 24;

/** Every file under `dir`, by path relative to it. */
async function readTree(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const path = join(d, e.name);
      if (e.isDirectory) await walk(path);
      else files.set(relative(dir, path), await Deno.readFile(path));
    }
  };
  await walk(dir);
  return files;
}

slurmCase(
  "the demo pipeline with --executor slurm and 3 array tasks publishes the local run's out/",
  async (cluster) => {
    const mirror = await startMirror({ count: ITEMS, imageSize: 256, seed: 1 });
    const shared = await Deno.makeTempDir({ prefix: "latentforge-slurm-demo-" });
    const projects: PipelineProject[] = [];
    try {
      const vae = await writeDemoVae(join(shared, "vae"));
      const demo = JSON.parse(await Deno.readTextFile(DEMO_CONFIG));
      // Both runs publish to the same out_dir: the packaged files embed the config, and with
      // it this path.
      const outDir = join(shared, "out");
      const config = mirroredConfig({
        ...demo,
        // One thread: onnxruntime's reductions then add in the same order in every process.
        model: { ...demo.model, threads: 1 },
        package: { ...demo.package, out_dir: outDir },
        executor: { array_tasks: 3, poll_s: 0.5, tasks: ["encode", "optimize"] },
      }, { mirror, vae });

      const local = await PipelineProject.create(config);
      projects.push(local);
      const first = await local.run(["run", "--json"]);
      assertEquals(first.code, 0, first.stderr);
      assertEquals(tasksRan(first).get("optimize"), ITEMS);
      const expected = await readTree(outDir);
      await Deno.remove(outDir, { recursive: true });

      const remote = await PipelineProject.create(config);
      projects.push(remote);
      const second = await remote.run(["run", "--json", "--executor", "slurm"], cluster.env);
      assertEquals(second.code, 0, second.stderr);
      const logs = second.events.filter((e) => e.event === "log").map((e) => e.message).join("\n");
      for (const task of ["encode", "optimize"]) {
        assertMatch(
          logs,
          new RegExp(`submitted ${task} as Slurm job \\d+ \\(array 0,1,2 of 3 shards, ${ITEMS} `),
        );
        assertEquals(tasksRan(second).get(task), ITEMS, `${task} actions imported`);
      }
      const actual = await readTree(outDir);

      // report.html and run.json state the run's date and timings, and .latentforge.json lists
      // every published file's digest, theirs among them: these differ between any two runs.
      // The report outside its run section, every other file and the listed digests of those
      // files must be the same.
      const varying = new Set(["report.html", "run.json", ".latentforge.json"]);
      const report = (files: Map<string, Uint8Array>) =>
        withoutRunSection(new TextDecoder().decode(files.get("report.html")));
      assertEquals(report(actual), report(expected));
      assertEquals([...actual.keys()].sort(), [...expected.keys()].sort());
      const kinds = new Set([...expected.keys()].map((rel) => rel.replace(/^.*\//, "")));
      for (
        const kind of [
          "latents.npz",
          "latents.h5",
          "latents.safetensors",
          "metrics.csv",
          "manifest.txt",
          "manifest.json",
          "report.html",
        ]
      ) assert(kinds.has(kind), `the dataset has no ${kind}: ${[...kinds]}`);
      const differing = [...expected].filter(([rel, bytes]) => {
        const other = actual.get(rel)!;
        return !varying.has(rel) &&
          (bytes.length !== other.length || bytes.some((b, i) => b !== other[i]));
      }).map(([rel]) => rel);
      assertEquals(differing, [], "files that differ between the local and the Slurm run");
      const listed = (files: Map<string, Uint8Array>) => {
        const marker = JSON.parse(new TextDecoder().decode(files.get(".latentforge.json")));
        const { ["report.html"]: _report, ["run.json"]: _run, ...rest } = marker.files as Record<
          string,
          string
        >;
        return rest;
      };
      assertEquals(listed(actual), listed(expected));
    } finally {
      await mirror.close();
      for (const p of projects) await p.cleanup();
      await Deno.remove(shared, { recursive: true }).catch(() => {});
    }
  },
);

slurmCase(
  "deno task demo --executor slurm starts its workers through pipeline.ts worker",
  async (cluster) => {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-slurm-demo-task-" });
    try {
      const cache = join(dir, "cache");
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "task",
          "demo",
          "--executor",
          "slurm",
          "--limit",
          "3",
          "--set",
          "optimize.max_steps=6",
          "--set",
          "executor.poll_s=0.5",
          "--set",
          "executor.array_tasks=2",
          "--set",
          `package.out_dir=${join(dir, "out")}`,
          "--cache",
          cache,
        ],
        cwd: REPO,
        env: { NO_COLOR: "1", ...cluster.env },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, text);
      assertMatch(text, /submitted encode as Slurm job \d+ \(array 0,1 of 2 shards, 3 items\)/);
      assertMatch(text, /submitted optimize as Slurm job \d+/);
      // Each array task's output is its worker's own summary line, not the demo's usage text.
      const logs = join(cache, "logs", "slurm");
      const outputs = await Promise.all(
        [...Deno.readDirSync(logs)].map((e) => Deno.readTextFile(join(logs, e.name))),
      );
      assert(outputs.length >= 4, `array task outputs: ${outputs.length}`);
      for (const o of outputs) assertMatch(o, /worker [01]\/2: \{/);
      assertMatch(text, /the report is at .*report\.html/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

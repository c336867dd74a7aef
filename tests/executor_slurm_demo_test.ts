import { withoutRunSection } from "../lib/report/run_section.ts";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { ensureSlurm } from "./fixtures/slurm.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";
import { writeDemoVae } from "./fixtures/vae.ts";

const slurm = await ensureSlurm();
if (!slurm.ok) console.warn(`skipping the Slurm demo test: ${slurm.reason}`);

const DEMO_CONFIG = fileURLToPath(new URL("../config/demo.json", import.meta.url));
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

Deno.test({
  name: "the demo pipeline with --executor slurm and 3 array tasks publishes the local run's out/",
  ignore: !slurm.ok,
  async fn() {
    const mirror = await startMirror({ count: ITEMS, imageSize: 256, seed: 1 });
    const shared = await Deno.makeTempDir({ prefix: "latentforge-slurm-demo-" });
    const projects: PipelineProject[] = [];
    try {
      const vae = await writeDemoVae(join(shared, "vae"));
      const demo = JSON.parse(await Deno.readTextFile(DEMO_CONFIG));
      // Both runs publish to the same out_dir: the packaged files embed the config, and with
      // it this path.
      const outDir = join(shared, "out");
      const config = {
        ...demo,
        dataset: { ...demo.dataset, spec: { url: mirror.specUrl } },
        labels: { ...demo.labels, source: { url: mirror.labelsUrl } },
        // One thread: onnxruntime's reductions then add in the same order in every process.
        model: {
          ...demo.model,
          encoder: { path: vae.encoder },
          decoder: { path: vae.decoder },
          threads: 1,
        },
        package: { ...demo.package, out_dir: outDir },
        executor: { array_tasks: 3, poll_s: 0.5, tasks: ["encode", "optimize"] },
      };

      const local = await PipelineProject.create(config);
      projects.push(local);
      const first = await local.run(["run", "--json"]);
      assertEquals(first.code, 0, first.stderr);
      assertEquals(ToyProject.ran(first).get("optimize"), ITEMS);
      const expected = await readTree(outDir);
      await Deno.remove(outDir, { recursive: true });

      const remote = await PipelineProject.create(config);
      projects.push(remote);
      const second = await remote.run(["run", "--json", "--executor", "slurm"]);
      assertEquals(second.code, 0, second.stderr);
      const logs = second.events.filter((e) => e.event === "log").map((e) => e.message).join("\n");
      for (const task of ["encode", "optimize"]) {
        assertMatch(
          logs,
          new RegExp(`submitted ${task} as Slurm job \\d+ \\(array 0,1,2 of 3 shards, ${ITEMS} `),
        );
        assertEquals(ToyProject.ran(second).get(task), ITEMS, `${task} actions imported`);
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
      assert(expected.has("report.html") && expected.size > varying.size + 2);
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
});

import { join } from "node:path";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { Running, someFile } from "./fixtures/running.ts";
import { mirroredConfig, removeTree, tasksRan } from "./fixtures/project.ts";
import { writeTinyVae } from "./fixtures/vae.ts";
import { checkpointProgress } from "../lib/optim/image_run.ts";
import { withoutRunSection } from "../lib/report/run_section.ts";

async function files(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      const path = join(d, e.name);
      if (e.isDirectory) await walk(path, `${rel}${e.name}/`);
      else out[`${rel}${e.name}`] = btoa(String.fromCharCode(...await Deno.readFile(path)));
    }
  };
  await walk(dir, "");
  return out;
}

Deno.test("kill -9 during optimize: the rerun resumes from checkpoints and ends with the same latents", async () => {
  const mirror = await startMirror({ count: 8, imageSize: 64, seed: 5 });
  const dir = await Deno.makeTempDir({ prefix: "latentforge-resume-" });
  const projects: PipelineProject[] = [];
  try {
    const vae = await writeTinyVae(join(dir, "vae"));
    // Both runs publish to the same place: the config (paths included) is part of the files.
    const outDir = join(dir, "out");
    const config = mirroredConfig({
      preprocess: { size: 64 },
      model: { scaling_factor: 1.0, providers: ["cpu"], threads: 1 },
      // Never converges early: every image runs all its steps, so a kill lands mid-way.
      optimize: { lr: 0.05, max_steps: 150, tolerance: 0, batch_size: 2, checkpoint_every: 5 },
      package: { formats: ["npz", "safetensors"], samples: 0, out_dir: outDir },
    }, { mirror, vae, labels: false });
    const clean = await PipelineProject.create(config);
    projects.push(clean);
    const killed = await PipelineProject.create(config);
    projects.push(killed);
    const reference = await clean.run(["run"]);
    assertEquals(reference.code, 0, reference.stderr);
    const want = await files(outDir);

    // Kill outright the moment the first checkpoint reference is in place (renamed from its
    // temp file, which a resumed run discards).
    const run = new Running(killed.command(["run", "--json"]));
    const checkpoints = join(killed.cache, "checkpoints", "optimize");
    const committed = (name: string) => !name.includes(".tmp-");
    await run.waitForState("an optimize checkpoint", () => someFile(checkpoints, committed));
    run.kill("SIGKILL");
    const dead = await run.finish();
    assertEquals(dead.signal, "SIGKILL");
    const finished = dead.events.filter((e) => e.event === "item" && e.task === "optimize");
    // 150 steps per batch of 2 and a checkpoint every 5: the first batch had just begun.
    assertEquals(finished, [], "no image can have finished its 150 steps");
    // The steps the checkpoints left behind hold, read back from the store.
    const saved: number[] = [];
    for await (const e of Deno.readDir(checkpoints)) {
      if (!committed(e.name)) continue;
      const digest = (await Deno.readTextFile(join(checkpoints, e.name))).trim();
      const object = join(killed.cache, "objects", digest.slice(0, 2), digest);
      saved.push(checkpointProgress(await Deno.readFile(object)).steps);
    }
    assert(saved.length > 0 && saved.every((s) => s > 0 && s < 150 && s % 5 === 0), `${saved}`);

    const resumed = await killed.run(["run", "--json"]);
    assertEquals(
      resumed.code,
      0,
      resumed.stderr +
        resumed.events.filter((e) => e.status === "failed" || e.reason).map((e) =>
          JSON.stringify(e)
        ).join("\n"),
    );
    const resumedAt = resumed.events.flatMap((e) => {
      const m = e.event === "log" &&
        /resuming from its checkpoint at step (\d+)/.exec(String(e.message));
      return m ? [Number(m[1])] : [];
    });
    // Every checkpoint left by the kill was resumed from, at its step; all 8 images optimized.
    assertEquals(resumedAt.sort((a, b) => a - b), saved.sort((a, b) => a - b));
    assertEquals(tasksRan(resumed).get("optimize"), 8);
    // Everything but the run's own facts (the report's run section, run.json) and the publish
    // marker that lists their digests is byte-identical to a clean run's.
    const got = await files(outDir);
    for (const f of ["run.json", ".latentforge.json"]) {
      delete got[f];
      delete want[f];
    }
    const html = (b64: string) =>
      new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    for (const f of [got, want]) f["report.html"] = withoutRunSection(html(f["report.html"]));
    assertEquals(got, want);
    assertEquals(
      await Array.fromAsync(Deno.readDir(join(killed.cache, "checkpoints", "optimize"))),
      [],
      "finished actions leave no checkpoints behind",
    );
  } finally {
    await mirror.close();
    for (const p of projects) await p.cleanup();
    await removeTree(dir);
  }
});

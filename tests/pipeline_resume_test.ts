import { join } from "node:path";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { parse } from "./fixtures/toy_harness.ts";
import { writeTinyVae } from "./fixtures/vae.ts";
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
  const vaeDir = await Deno.makeTempDir();
  const vae = await writeTinyVae(vaeDir);
  // Both runs publish to the same place: the config (paths included) is part of the files.
  const outDir = join(vaeDir, "out");
  const config = {
    dataset: { kind: "ffhq", spec: { url: mirror.specUrl } },
    preprocess: { size: 64 },
    model: {
      encoder: { path: vae.encoder },
      decoder: { path: vae.decoder },
      scaling_factor: 1.0,
      providers: ["cpu"],
      threads: 1,
    },
    // Never converges early: every image runs all its steps, so a kill lands mid-way.
    optimize: { lr: 0.05, max_steps: 150, tolerance: 0, batch_size: 2, checkpoint_every: 5 },
    package: { formats: ["npz", "safetensors"], samples: 0, out_dir: outDir },
  };
  const clean = await PipelineProject.create(config);
  const killed = await PipelineProject.create(config);
  try {
    const reference = await clean.run(["run"]);
    assertEquals(reference.code, 0, reference.stderr);
    const want = await files(outDir);

    const child = killed.command(["run", "--json"]).spawn();
    const reader = child.stdout.getReader();
    let text = "";
    while (!text.includes('"task-end","task":"encode"')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    // Let optimization get past a few checkpoints, then kill the run outright.
    await new Promise((r) => setTimeout(r, 2500));
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel();
    await child.stderr.cancel();
    const finished = parse(0, new TextEncoder().encode(text), new Uint8Array()).events
      .filter((e) => e.event === "item" && e.task === "optimize").length;
    assert(finished < 8, `the kill came too late: ${finished} of 8 images were already done`);

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
    // Those images computed only the steps after their checkpoint.
    assert(resumedAt.length > 0 && resumedAt.every((s) => s > 0), `resumed at ${resumedAt}`);
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
    await clean.cleanup();
    await killed.cleanup();
    await Deno.remove(vaeDir, { recursive: true });
  }
});

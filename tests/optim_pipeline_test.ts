/**
 * `optimize.method: "lbfgs"` and `optimize.max_passes` through the real pipeline: steps and
 * passes in metrics.csv, the report's PSNR-per-pass section, and keys that hold what the method
 * reads (L-BFGS's memory for L-BFGS only; the batch size and checkpoint cadence for nobody).
 */
import { join } from "node:path";
import sharp from "sharp";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { tasksPlanned } from "./fixtures/project.ts";
import { writeDemoVae } from "./fixtures/vae.ts";

async function images(dir: string): Promise<void> {
  await Deno.mkdir(join(dir, "train"), { recursive: true });
  for (let i = 0; i < 5; i++) {
    const stripes = Buffer.from(
      Array.from({ length: 64 * 64 * 3 }, (_, k) => {
        const x = Math.floor(k / 3) % 64, y = Math.floor(k / 192);
        return Math.round(127 + 120 * Math.sin((x * (i + 1)) / 7 + y / 5 + (k % 3)));
      }),
    );
    await sharp(stripes, { raw: { width: 64, height: 64, channels: 3 } })
      .png().toFile(join(dir, "train", `img${i}.png`));
  }
}

/** The items of `task` a dry run with `--set` edits would run. */
async function planned(p: PipelineProject, task: string, sets: string[]): Promise<number> {
  const r = await p.run(["run", "--dry-run", "--json", ...sets.flatMap((s) => ["--set", s])]);
  assertEquals(r.code, 0, r.stderr);
  return tasksPlanned(r)[task] ?? 0;
}

Deno.test("lbfgs with a pass budget: passes in metrics.csv and the report; keys hold what it reads", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-optim-pipeline-" });
  try {
    await images(join(dir, "data"));
    const vae = await writeDemoVae(join(dir, "vae"));
    const p = await PipelineProject.create({
      dataset: { kind: "folder", path: join(dir, "data") },
      preprocess: { size: 64 },
      model: { encoder: { path: vae.encoder }, decoder: { path: vae.decoder }, scaling_factor: 1 },
      optimize: { method: "lbfgs", max_passes: 12, batch_size: 2, tolerance: 0 },
      package: { samples: 1, formats: ["npz"] },
    });
    try {
      const r = await p.run(["run", "--json"]);
      assertEquals(r.code, 0, r.stderr);
      const csv = (await Deno.readTextFile(join(p.out, "train", "metrics.csv"))).trim().split("\n");
      const header = csv[0].split(",");
      assertEquals(header.slice(8, 11), ["steps", "passes", "stop"]);
      assertEquals(csv.length, 6);
      for (const line of csv.slice(1)) {
        const row = Object.fromEntries(line.split(",").map((v, k) => [header[k], v]));
        const [steps, passes] = [Number(row.steps), Number(row.passes)];
        assert(steps >= 1 && steps < passes, line);
        assert(
          (row.stop === "max_passes" && passes === 12) ||
            (row.stop === "converged" && passes <= 12),
          line,
        );
        assert(Number(row.psnr_final) > Number(row.psnr_initial), line);
      }
      const report = await Deno.readTextFile(join(p.out, "report.html"));
      assertStringIncludes(report, "<h2>PSNR per pass</h2>");
      assertStringIncludes(report, "PSNR of the best latent over passes");

      assertEquals(await planned(p, "optimize", []), 0, "all cached");
      assertEquals(await planned(p, "optimize", ["optimize.batch_size=5"]), 0, "batch size");
      assertEquals(await planned(p, "optimize", ["optimize.checkpoint_every=3"]), 0, "cadence");
      assertEquals(await planned(p, "optimize", ["optimize.lbfgs.history=4"]), 5, "memory");
      assertEquals(await planned(p, "optimize", ["optimize.max_passes=20"]), 5, "budget");
      // Adam does not read L-BFGS's memory: changing it reruns nothing once Adam's are cached.
      const adam = ["optimize.method=gradient"];
      const ran = await p.run(["run", "--json", ...adam.flatMap((s) => ["--set", s])]);
      assertEquals(ran.code, 0, ran.stderr);
      assertEquals(await planned(p, "optimize", [...adam, "optimize.lbfgs.history=4"]), 0);
    } finally {
      await p.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

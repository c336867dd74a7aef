/**
 * `optimize.method: "none"` through the real pipeline: the dataset holds the encoder's latents
 * (no `initial_*`, no metrics, no metrics.csv), with or without a decoder; switching to an
 * optimizing method later plans and runs only optimize and package.
 */
import { join } from "node:path";
import sharp from "sharp";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { PipelineProject, python } from "./fixtures/pipeline_project.ts";
import { tasksPlanned, tasksRan } from "./fixtures/project.ts";
import { syntheticImageSvg } from "./fixtures/synthetic_images.ts";
import { writeDemoVae } from "./fixtures/vae.ts";

/** Five small scenes in `train/` and `val/` sub-folders. */
async function images(dir: string): Promise<void> {
  for (const [k, split] of ["train", "train", "train", "val", "val"].entries()) {
    await Deno.mkdir(join(dir, split), { recursive: true });
    await sharp(new TextEncoder().encode(syntheticImageSvg(k, { width: 80, height: 64 })))
      .png().toFile(join(dir, split, `img${k}.png`));
  }
}

/** The items a dry run with `--set` edits would run, by task. */
async function planned(p: PipelineProject, sets: string[]): Promise<Record<string, number>> {
  const r = await p.run(["run", "--dry-run", "--json", ...sets.flatMap((s) => ["--set", s])]);
  assertEquals(r.code, 0, r.stderr);
  return tasksPlanned(r);
}

Deno.test("method none keeps the encoder's latents; switching to gradient reruns only optimize and package", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-encode-only-" });
  try {
    await images(join(dir, "data"));
    const vae = await writeDemoVae(join(dir, "vae"));
    const p = await PipelineProject.create({
      dataset: { kind: "folder", path: join(dir, "data") },
      preprocess: { size: 64, flip: true },
      model: { encoder: { path: vae.encoder }, decoder: { path: vae.decoder }, scaling_factor: 1 },
      optimize: { method: "none" },
      package: { samples: 2, formats: ["npz", "safetensors"], layout: "shards" },
    });
    try {
      const r = await p.run(["run", "--json"]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(await Deno.stat(join(p.out, "train", "metrics.csv")).catch(() => null), null);
      const index = JSON.parse(await Deno.readTextFile(join(p.out, "index.json")));
      assertEquals(index.images.length, 5);
      assertEquals(index.images[0].tensors, {
        latents: "latents",
        latents_flipped: "latents_flipped",
      });
      // The shards hold the latents and their conditioning, and no metrics.
      const read = await python<{ names: string[]; shape: number[] }>(`
import json, numpy as np, struct
root = ${JSON.stringify(p.out)}
index = json.load(open(root + "/index.json"))
im = index["images"][0]
with open(root + "/" + im["file"], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
names = sorted(k for k in header if k != "__metadata__")
print(json.dumps({"names": names, "shape": header["latents"]["shape"]}))
`);
      assertEquals(read.names, [
        "crop_box",
        "crop_coords_top_left",
        "crop_coords_top_left_flipped",
        "latents",
        "latents_flipped",
        "original_size",
        "target_size",
      ]);
      assertEquals(read.shape.slice(1), [4, 8, 8]);
      // The report shows the encoder's reconstruction quality on the decoded samples.
      const report = await Deno.readTextFile(join(p.out, "report.html"));
      assertMatch(report, /Median PSNR<\/div><div class="value"><span class="before">\d+\.\d\d/);

      // An optimizing method later: the plan and the run agree, and neither touches encode.
      const gradient = ["optimize.method=gradient", "optimize.max_steps=2"];
      assertEquals(await planned(p, gradient), { optimize: 10, package: 1 });
      const again = await p.run(["run", "--json", ...gradient.flatMap((s) => ["--set", s])]);
      assertEquals(again.code, 0, again.stderr);
      const ran = tasksRan(again);
      assertEquals([ran.get("preprocess"), ran.get("encode")], [0, 0]);
      assertEquals([ran.get("optimize"), ran.get("package")], [10, 1]);
      const csv = (await Deno.readTextFile(join(p.out, "train", "metrics.csv"))).trim().split("\n");
      assertEquals(csv.length, 1 + 3 * 2);
      const optimized = JSON.parse(await Deno.readTextFile(join(p.out, "index.json")));
      assertEquals(optimized.images[0].tensors.initial_latents, "initial_latents");
    } finally {
      await p.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("method none without a decoder: channels from model.latent_channels, no samples", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-encode-only-" });
  try {
    await images(join(dir, "data"));
    const vae = await writeDemoVae(join(dir, "vae"));
    const p = await PipelineProject.create({
      dataset: { kind: "folder", path: join(dir, "data") },
      preprocess: { size: 64 },
      model: { encoder: { path: vae.encoder }, latent_channels: 4, scaling_factor: 0.5 },
      optimize: { method: "none" },
      package: { samples: 2, formats: ["npz"] },
    });
    try {
      const r = await p.run(["run", "--json"]);
      assertEquals(r.code, 0, r.stderr);
      const manifest = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
      assertEquals(manifest.counts, { train: 3, val: 2 });
      assertEquals(manifest.models.decoder_sha256, null);
      const npz = await python<{ keys: string[]; shape: number[] }>(`
import json, numpy as np
z = np.load(${JSON.stringify(join(p.out, "train", "latents.npz"))})
print(json.dumps({"keys": sorted(z.files), "shape": list(z["latents"].shape)}))
`);
      assert(
        !npz.keys.includes("initial_latents") && !npz.keys.includes("psnr_final"),
        `${npz.keys}`,
      );
      assertEquals(npz.shape, [3, 4, 8, 8]);
      assertStringIncludes(await Deno.readTextFile(join(p.out, "report.html")), "No samples.");

      // A wrong channel count is one clear error naming the field.
      const wrong = await p.run(["run", "--json", "--set", "model.latent_channels=3"]);
      assertEquals(wrong.code, 1, wrong.stderr);
      const encode = wrong.events.find((e) => e.event === "task-end" && e.task === "encode")!;
      assertEquals(encode.status, "failed");
      assertMatch(
        String(encode.reason),
        /^model\.latent_channels says 3 latent channels: expected the encoder to give 3 \(the latent\) or 6 \(mean and log-variance\), found 4$/,
      );
    } finally {
      await p.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every optimizing method needs a decoder: a config error naming model.decoder", async () => {
  const p = await PipelineProject.create({
    dataset: { kind: "folder", path: "." },
    model: { encoder: { path: "e.onnx" }, latent_channels: 4, scaling_factor: 1 },
  });
  try {
    const r = await p.run(["run", "--dry-run"]);
    assertEquals(r.code, 2, r.stderr);
    assertStringIncludes(r.stderr, 'model.decoder: required with optimize.method "gradient"');
  } finally {
    await p.cleanup();
  }
});

import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { PYTHON, pythonRequirement } from "./fixtures/python.ts";
import { partIf } from "./fixtures/skip.ts";
import { syntheticImage } from "./fixtures/synthetic_images.ts";
import { writeDemoVae } from "./fixtures/vae.ts";
import { openRecords } from "../lib/store/records.ts";
import type { DatasetIndex } from "../lib/package/dataset_index.ts";
import { tasksRan } from "./fixtures/project.ts";

const LOADER = new URL("../examples/torch_dataset.py", import.meta.url).pathname;
const BUCKETS_TEST =
  "mixed-aspect photos give bucketed, flipped, sharded latents that the PyTorch loader reads";
const hasTorch = partIf(
  pythonRequirement("torch, numpy"),
  BUCKETS_TEST,
  "the PyTorch loader check",
);

/** Mixed aspect ratios: landscape, portrait, square and a panorama, over two splits. */
const IMAGES: [string, number, number][] = [
  ["train/wide", 96, 64],
  ["train/tall", 64, 96],
  ["train/square", 80, 80],
  ["train/panorama", 150, 50],
  ["train/photo", 100, 64],
  ["val/portrait", 60, 100],
  ["val/small", 70, 70],
];

/** Bucket of each image for area 64², step 16 (nearest in log aspect ratio). */
const BUCKETS: Record<string, string> = {
  "train/wide": "80x48",
  "train/tall": "48x80",
  "train/square": "64x64",
  "train/panorama": "96x32",
  "train/photo": "80x48",
  "val/portrait": "48x80",
  "val/small": "64x64",
};

async function writeImages(dir: string, variant = 0): Promise<void> {
  for (const [i, [id, width, height]] of IMAGES.entries()) {
    await Deno.mkdir(join(dir, id.split("/")[0]), { recursive: true });
    const { png } = await syntheticImage(i + variant * 100, { width, height });
    await Deno.writeFile(join(dir, `${id}.png`), png);
  }
}

function logLines(r: { events: Record<string, unknown>[] }): string[] {
  return r.events.filter((e) => e.event === "log").map((e) => String(e.message));
}

Deno.test(BUCKETS_TEST, async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-buckets-" });
  try {
    await writeImages(join(dir, "data"));
    const vae = await writeDemoVae(join(dir, "vae"));
    const p = await PipelineProject.create({
      dataset: { kind: "folder", path: join(dir, "data") },
      preprocess: { size: 64, crop: "buckets", buckets: { step: 16 }, flip: true },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: vae.decoder },
        scaling_factor: 1.0,
        providers: ["cpu"],
        threads: 1,
      },
      optimize: { lr: 0.05, max_steps: 3, batch_size: 4 },
      package: { layout: "shards", shard_size: 1, samples: 2 },
    });
    try {
      // A bucket step the VAE cannot take is one error, before any image is encoded.
      const step = await p.run(["run", "encode", "--set", "preprocess.buckets.step=12"]);
      assertEquals(step.code, 1, step.stderr);
      assertStringIncludes(
        step.stderr,
        "preprocess.buckets.step 12 is not a multiple of 8, the spatial factor of model.encoder",
      );
      // Said on encode's line and once more in the closing summary, never per image.
      assertEquals(step.stderr.split("preprocess.buckets.step 12").length, 3, step.stderr);

      const first = await p.run(["run", "--json"]);
      assertEquals(first.code, 0, first.stderr);
      const ran = tasksRan(first);
      assertEquals([ran.get("preprocess"), ran.get("encode"), ran.get("optimize")], [14, 14, 14]);

      const index: DatasetIndex = JSON.parse(await Deno.readTextFile(join(p.out, "index.json")));
      assertEquals(index.layout, "shards");
      assertEquals(index.flip, true);
      assertEquals(
        Object.fromEntries(index.images.map((i) => [i.id, i.bucket])),
        BUCKETS,
      );
      assertEquals(index.buckets["96x32"], { images: 1, latent_shape: [4, 4, 12] });
      // One image per shard: every image its own file, named by split and bucket.
      assertEquals(
        index.images.map((i) => i.file).sort(),
        [
          "train/shards/48x80-00000.safetensors",
          "train/shards/64x64-00000.safetensors",
          "train/shards/80x48-00000.safetensors",
          "train/shards/80x48-00001.safetensors",
          "train/shards/96x32-00000.safetensors",
          "val/shards/48x80-00000.safetensors",
          "val/shards/64x64-00000.safetensors",
        ],
      );
      const manifest = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
      assertEquals(manifest.schema_version, 2);
      assertEquals(manifest.buckets, { "48x80": 2, "64x64": 2, "80x48": 2, "96x32": 1 });
      const pano = manifest.images["train/panorama"];
      assertEquals(pano.original_size, [50, 150]);
      assertEquals(pano.target_size, [32, 96]);
      assertEquals(pano.crop_box, [0, 0, 50, 150]);
      assertEquals(pano.labels, { category: "train" });
      assertEquals(pano.flipped.id, "train/panorama#flip");
      const report = await Deno.readTextFile(join(p.out, "report.html"));
      assertStringIncludes(report, "<h2>Buckets</h2>");
      assertStringIncludes(report, "96×32");
      const csv = (await Deno.readTextFile(join(p.out, "train", "metrics.csv"))).trim().split("\n");
      assertEquals(csv.length, 1 + 2 * 5, "a metrics row per image and per flipped image");

      if (hasTorch) {
        // The records: each item's optimized latent object and its conditioning.
        const records = await openRecords(p.cache);
        const expected: Record<string, unknown> = {};
        try {
          const optimized = await records.actions("optimize");
          const preprocessed = await records.actions("preprocess");
          const object = (d: string) => join(p.cache, "objects", d.slice(0, 2), d);
          for (const [id] of IMAGES) {
            const meta = preprocessed.get(id)!.meta as Record<string, unknown>;
            expected[id] = {
              latent: object(optimized.get(id)!.objects.latent),
              flipped: object(optimized.get(`${id}#flip`)!.objects.latent),
              original_size: meta.original_size,
              crop_coords_top_left: meta.crop_coords_top_left,
              crop_coords_top_left_flipped:
                (preprocessed.get(`${id}#flip`)!.meta as Record<string, unknown>)
                  .crop_coords_top_left,
              target_size: meta.target_size,
              psnr: (optimized.get(id)!.meta as Record<string, number>).psnr_final,
            };
          }
        } finally {
          records.close();
        }
        const script = `
import json, sys, importlib.util
import numpy as np, torch
spec = importlib.util.spec_from_file_location("torch_dataset", sys.argv[1])
td = importlib.util.module_from_spec(spec); spec.loader.exec_module(td)
expected = json.loads(sys.argv[3])
ds = td.LatentDataset(sys.argv[2], verify=True)
loader = torch.utils.data.DataLoader(ds, batch_sampler=td.BucketBatchSampler(ds, batch_size=2, seed=3), collate_fn=td.collate, num_workers=1)
seen, buckets = [], []
for batch in loader:
    buckets.append(sorted(set(batch["bucket"])))
    for k, id_ in enumerate(batch["id"]):
        e = expected[id_]
        seen.append(id_)
        assert torch.equal(batch["latents"][k], torch.from_numpy(np.load(e["latent"])[0])), id_
        assert torch.equal(batch["latents_flipped"][k], torch.from_numpy(np.load(e["flipped"])[0])), id_
        for name in ("original_size", "crop_coords_top_left", "crop_coords_top_left_flipped", "target_size"):
            assert batch[name][k].tolist() == e[name], (id_, name)
        assert batch["labels"]["category"][k] == id_.split("/")[0]
print(json.dumps({"seen": sorted(seen), "buckets": buckets}))
`;
        const out = await new Deno.Command(PYTHON, {
          args: ["-c", script, LOADER, p.out, JSON.stringify(expected)],
        }).output();
        assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
        const result = JSON.parse(new TextDecoder().decode(out.stdout));
        assertEquals(result.seen, IMAGES.map(([id]) => id).sort());
        assert(
          result.buckets.every((b: string[]) => b.length === 1),
          `no batch mixes buckets: ${JSON.stringify(result.buckets)}`,
        );
      }

      // Flips off: only package reruns, and the dataset has no flipped latents.
      const off = await p.run(["run", "--json", "--set", "preprocess.flip=false"]);
      assertEquals(off.code, 0, off.stderr);
      assertEquals([...tasksRan(off)].filter(([, n]) => n > 0), [["package", 1]]);
      const unflipped = JSON.parse(await Deno.readTextFile(join(p.out, "index.json")));
      assertEquals(unflipped.flip, false);
      // Flips on again, with a report setting changed so that package reruns: it finds every
      // shard it built the first time.
      const samples = ["--set", "package.samples=1"];
      const on = await p.run(["run", "--json", ...samples]);
      assertEquals(on.code, 0, on.stderr);
      assertEquals([...tasksRan(on)].filter(([, n]) => n > 0), [["package", 1]]);
      assert(
        logLines(on).includes("7 files reused from the store, 0 built"),
        logLines(on).join("\n"),
      );

      // One photo replaced: its items rerun, and only the shard that holds it is rebuilt.
      const { png } = await syntheticImage(999, { width: 100, height: 64 });
      await Deno.writeFile(join(dir, "data", "train", "photo.png"), png);
      const changed = await p.run(["run", "--json", ...samples]);
      assertEquals(changed.code, 0, changed.stderr);
      assertEquals(tasksRan(changed).get("optimize"), 2);
      assert(
        logLines(changed).includes("6 files reused from the store, 1 built"),
        logLines(changed).join("\n"),
      );
    } finally {
      await p.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

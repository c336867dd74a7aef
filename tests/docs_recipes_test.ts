/**
 * The README's diffusion recipes, run as written: `config/imagenet.json` (class folders, flips,
 * encode-only) and `config/laion.json` (tar shards with captions) through `deno task run`'s
 * launcher and its narrowed permissions (shard patterns expanded into the read grant), on
 * generated data of each dataset's shape at the config's own relative paths; the output read
 * back with numpy and the PyTorch loader.
 */
import { join } from "node:path";
import sharp from "sharp";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { python } from "./fixtures/pipeline_project.ts";
import { parse, pipelineCommand, REPO } from "./fixtures/project.ts";
import { pythonRequirement, runPython } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";
import { syntheticImageSvg } from "./fixtures/synthetic_images.ts";
import { writeDemoVae } from "./fixtures/vae.ts";

const README = await Deno.readTextFile(join(REPO, "README.md"));
const LOADER = join(REPO, "examples");

async function image(path: string, k: number, width = 160, height = 128): Promise<void> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  const svg = new TextEncoder().encode(syntheticImageSvg(k, { width, height }));
  await sharp(svg).jpeg().toFile(path);
}

/** The models a recipe names, as a generated 4-channel, 8× VAE (the shape of sd15 and sdxl). */
async function models(dir: string, config: { model: Record<string, { path: string }> }) {
  const vae = await writeDemoVae(join(dir, "generated-vae"));
  for (const [field, file] of [["encoder", vae.encoder], ["decoder", vae.decoder]]) {
    const target = join(dir, config.model[field].path);
    await Deno.mkdir(join(target, ".."), { recursive: true });
    await Deno.copyFile(file, target);
  }
}

/** `deno task run --config <recipe>` from `dir`, as the README says to run it. */
async function runRecipe(dir: string, recipe: string) {
  const out = await pipelineCommand(["run", "--json"], {
    main: join(REPO, "lib", "cli", "launch.ts"),
    cache: join(dir, "cache"),
    configPath: join(REPO, recipe),
    cwd: dir,
  }).output();
  return parse(out.code, out.stdout, out.stderr);
}

function recipeSection(): string {
  const start = README.indexOf("\n## Diffusion training sets\n");
  assert(start >= 0, "README has no section Diffusion training sets");
  return README.slice(start, README.indexOf("\n## ", start + 4));
}

Deno.test("README: each diffusion recipe names its config, its command and its Slurm array", () => {
  const section = recipeSection();
  for (const config of ["config/imagenet.json", "config/laion.json"]) {
    assertStringIncludes(section, `deno task run --config ${config}\n`);
    assertStringIncludes(section, `deno task run --config ${config} --executor slurm`);
  }
});

testIf(pythonRequirement("numpy, torch"), {
  name: "recipe config/imagenet.json: class folders with a val CSV, flips, encode-only shards",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-recipe-imagenet-" });
    try {
      const config = JSON.parse(await Deno.readTextFile(join(REPO, "config/imagenet.json")));
      await models(dir, config);
      const synsets = ["n01440764", "n01443537", "n01484850"];
      let k = 0;
      for (const s of synsets) {
        for (const n of [10026, 10027]) {
          await image(join(dir, config.dataset.splits.train, s, `${s}_${n}.JPEG`), k++, 300, 260);
        }
      }
      const val = config.dataset.splits.val;
      const rows = ["file,class"];
      for (const [i, s] of ["n01484850", "n01440764"].entries()) {
        const name = `ILSVRC2012_val_0000000${i + 1}.JPEG`;
        await image(join(dir, val.path, name), k++, 260, 300);
        rows.push(`${name},${s}`);
      }
      await Deno.writeTextFile(join(dir, val.labels), rows.join("\n") + "\n");

      const r = await runRecipe(dir, "config/imagenet.json");
      assertEquals(r.code, 0, r.stderr + r.stdout.slice(-2000));
      const outDir = join(dir, config.package.out_dir);
      const got = await python<{
        classes: string[];
        n: number;
        labels: Record<string, number>;
        shapes: number[][];
        tensors: string[];
      }>(`
import json, sys
sys.path.insert(0, ${JSON.stringify(LOADER)})
from torch_dataset import LatentDataset, BucketBatchSampler, collate
import torch
ds = LatentDataset(${JSON.stringify(outDir)}, flip="expand")
loader = torch.utils.data.DataLoader(ds, batch_sampler=BucketBatchSampler(ds, 16, seed=0), collate_fn=collate)
batch = next(iter(loader))
print(json.dumps({"classes": ds.classes, "n": len(ds),
  "labels": {ds[i]["id"]: ds[i]["labels"]["class"] for i in range(0, len(ds), 2)},
  "shapes": [list(batch["latents"].shape), list(batch["labels"]["class"].shape)],
  "tensors": sorted(ds.images[0]["tensors"])}))
`);
      assertEquals(got.classes, synsets);
      assertEquals(got.n, 16, "8 images and their flips");
      assertEquals(got.labels["train/n01443537/n01443537_10027"], 1);
      assertEquals(got.labels["val/ILSVRC2012_val_00000001"], 2);
      assertEquals(got.shapes, [[16, 4, 32, 32], [16]]);
      assertEquals(got.tensors, ["latents", "latents_flipped"]);
      const manifest = JSON.parse(await Deno.readTextFile(join(outDir, "manifest.json")));
      assertEquals(manifest.counts, { train: 6, val: 2 });
      const logs = r.events.filter((e) => e.event === "log").map((e) => String(e.message));
      assert(logs.includes("class n01443537 has no image in split val"), logs.join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

testIf(pythonRequirement("numpy, torch"), {
  name: "recipe config/laion.json: tar shards with captions, buckets, encode-only",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-recipe-laion-" });
    try {
      const config = JSON.parse(await Deno.readTextFile(join(REPO, "config/laion.json")));
      await models(dir, config);
      const shards = join(dir, config.dataset.shards[0], "..");
      const src = join(dir, "src");
      const sizes = [[640, 480], [480, 640], [768, 512], [512, 512]];
      for (const [k, [w, h]] of sizes.entries()) {
        const key = `00000${k}`;
        await image(join(src, `${key}.jpg`), k, w, h);
        await Deno.writeTextFile(join(src, `${key}.txt`), `a photo, number ${k}`);
        await Deno.writeTextFile(
          join(src, `${key}.json`),
          JSON.stringify({ key, caption: `a photo, number ${k}`, width: w, height: h }),
        );
      }
      await Deno.mkdir(shards, { recursive: true });
      runPython(
        `
import sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
for shard, keys in (("00000.tar", (0, 1)), ("00001.tar", (2, 3))):
    with tarfile.open(f"{dst}/{shard}", "w") as t:
        for k in keys:
            for ext in ("jpg", "txt", "json"):
                t.add(f"{src}/00000{k}.{ext}", arcname=f"00000{k}.{ext}")
`,
        [src, shards],
      );
      await Deno.remove(src, { recursive: true });

      const r = await runRecipe(dir, "config/laion.json");
      assertEquals(r.code, 0, r.stderr + r.stdout.slice(-2000));
      const outDir = join(dir, config.package.out_dir);
      const got = await python<{ captions: Record<string, string>; buckets: string[] }>(`
import json, sys
sys.path.insert(0, ${JSON.stringify(LOADER)})
from torch_dataset import LatentDataset
ds = LatentDataset(${JSON.stringify(outDir)})
print(json.dumps({"captions": {ds[i]["id"]: ds[i]["caption"] for i in range(len(ds))},
                  "buckets": sorted({ds.bucket(i) for i in range(len(ds))})}))
`);
      assertEquals(got.captions, {
        "000000": "a photo, number 0",
        "000001": "a photo, number 1",
        "000002": "a photo, number 2",
        "000003": "a photo, number 3",
      });
      assertEquals(got.buckets.length, 4, `${got.buckets}`);
      const index = JSON.parse(await Deno.readTextFile(join(outDir, "index.json")));
      assertEquals(index.images.find((i: { id: string }) => i.id === "000002").meta.width, 768);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * A class-folder dataset (torchvision's ImageFolder convention) through the real pipeline:
 * train/ with class sub-folders, a flat val/ with a `file,class` CSV, flips, encode-only,
 * shards; read back with labels by numpy and by the PyTorch loader, then in the split layout's
 * three formats.
 */
import { join } from "node:path";
import sharp from "sharp";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { PipelineProject, python } from "./fixtures/pipeline_project.ts";
import { tasksRan } from "./fixtures/project.ts";
import { pythonRequirement } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";
import { syntheticImageSvg } from "./fixtures/synthetic_images.ts";
import { writeDemoVae } from "./fixtures/vae.ts";

const LOADER = join(import.meta.dirname!, "..", "examples");

/** train/<class>/<n>.png for three classes, val/<n>.png for two of them, and val.csv. */
async function classFolders(dir: string): Promise<void> {
  const write = async (rel: string, k: number) => {
    await Deno.mkdir(join(dir, rel, ".."), { recursive: true });
    await sharp(new TextEncoder().encode(syntheticImageSvg(k, { width: 72, height: 64 })))
      .png().toFile(join(dir, rel));
  };
  let k = 0;
  // "Zebra" sorts before "ant" by code point, as Python's sorted puts it.
  for (const cls of ["ant", "Zebra", "bee"]) {
    for (const n of [1, 2]) await write(`train/${cls}/${cls}_${n}.png`, k++);
  }
  await write("val/v1.png", k++);
  await write("val/v2.png", k++);
  await write("val/v3.png", k++);
  await Deno.writeTextFile(join(dir, "val.csv"), "file,class\nv1.png,bee\nv2,ant\nv3.png,ant\n");
}

testIf(pythonRequirement("numpy, torch, h5py"), {
  name: "class folders: label_class in every format, class_to_idx, encode-only shards with flips",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-imagefolder-" });
    try {
      await classFolders(join(dir, "in"));
      const vae = await writeDemoVae(join(dir, "vae"));
      const p = await PipelineProject.create({
        dataset: {
          kind: "imagefolder",
          splits: {
            train: join(dir, "in", "train"),
            val: { path: join(dir, "in", "val"), labels: join(dir, "in", "val.csv") },
          },
        },
        preprocess: { size: 64, flip: true },
        model: { encoder: { path: vae.encoder }, latent_channels: 4, scaling_factor: 1 },
        optimize: { method: "none" },
        package: { samples: 0, layout: "shards", shard_size: 4 },
      });
      try {
        const r = await p.run(["run", "--json"]);
        assertEquals(r.code, 0, r.stderr + r.stdout);
        const logs = r.events.filter((e) => e.event === "log").map((e) => String(e.message));
        assert(logs.includes("class Zebra has no image in split val"), logs.join("\n"));

        const manifest = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
        const classes = { Zebra: 0, ant: 1, bee: 2 };
        assertEquals(manifest.class_to_idx, classes);
        assertEquals(manifest.notes.classes_missing, [{ class: "Zebra", absent: ["val"] }]);
        const report = await Deno.readTextFile(join(p.out, "report.html"));
        assert(report.includes("Classes missing from a split"), "the report notes the class");
        assert(report.includes("none in val"), "the report names the split");
        assertEquals(manifest.counts, { train: 6, val: 3 });
        assertEquals(manifest.images["train/bee/bee_2"].labels, { category: "train", class: 2 });
        assertEquals(manifest.images["val/v2"].labels, { category: "val", class: 1 });

        const got = await readBack(p.out);
        const index = JSON.parse(await Deno.readTextFile(join(p.out, "index.json")));
        assertEquals(index.label_fields, { category: "text", class: "integer" });
        // Every shard's label_class column holds its rows' class indices, in row order.
        for (const [file, values] of Object.entries(got.shards)) {
          const rows = index.images.filter((i: { file: string }) => i.file === file);
          assertEquals(values, rows.map((i: { labels: { class: number } }) => i.labels.class));
        }
        assertEquals(Object.keys(got.shards).length, 3);
        assertEquals(got.loader.classes, ["Zebra", "ant", "bee"]);
        assertEquals(got.loader.n, 9);
        assertEquals(got.loader.labels["train/Zebra/Zebra_1"], 0);
        assertEquals(got.loader.labels["val/v1"], 2);
        assertEquals(got.batch.dtype, "torch.int64");
        assertEquals(got.batch.flipped.slice(1), [4, 8, 8]);

        await checkSplitFormats(p, classes);
      } finally {
        await p.cleanup();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** The split layout: the same labels in npz, HDF5 and safetensors; only package reruns. */
async function checkSplitFormats(p: PipelineProject, classes: Record<string, number>) {
  await p.writeConfig({
    ...p.config,
    package: { samples: 0, layout: "split", formats: ["npz", "hdf5", "safetensors"] },
  });
  const split = await p.run(["run", "--json"]);
  assertEquals(split.code, 0, split.stderr);
  const ran = tasksRan(split);
  assertEquals([ran.get("encode"), ran.get("optimize"), ran.get("package")], [0, 0, 1]);
  const formats = await python<Record<string, { dtype: string; values: number[] }>>(`
import json, struct, h5py, numpy as np
root = ${JSON.stringify(join(p.out, "train"))}
z = np.load(root + "/latents.npz")
with h5py.File(root + "/latents.h5") as h:
    h5 = h["label_class"][()]
with open(root + "/latents.safetensors", "rb") as fh:
    n = struct.unpack("<Q", fh.read(8))[0]
    e = json.loads(fh.read(n))["label_class"]
    fh.seek(8 + n + e["data_offsets"][0])
    st = np.frombuffer(fh.read(e["data_offsets"][1] - e["data_offsets"][0]), dtype="<i8")
out = {k: {"dtype": str(v.dtype), "values": v.tolist()} for k, v in
       [("npz", z["label_class"]), ("hdf5", h5), ("safetensors", st)]}
out["ids"] = {"dtype": "", "values": z["ids"].tolist()}
print(json.dumps(out))
`);
  const ids = formats.ids.values as unknown as string[];
  const expected = ids.map((id) => classes[id.split("/")[1] as keyof typeof classes]);
  assertEquals(expected.length, 6);
  for (const f of ["npz", "hdf5", "safetensors"]) {
    assertEquals(formats[f], { dtype: "int64", values: expected }, f);
  }
}

/** The shards' label_class columns read with numpy, and the dataset through the loader. */
async function readBack(out: string) {
  return await python<{
    shards: Record<string, number[]>;
    loader: { classes: string[]; n: number; labels: Record<string, number> };
    batch: { cls: number[]; dtype: string; flipped: number[] };
  }>(`
import json, struct, sys, numpy as np
sys.path.insert(0, ${JSON.stringify(LOADER)})
from torch_dataset import LatentDataset, BucketBatchSampler, collate
import torch
root = ${JSON.stringify(out)}
index = json.load(open(root + "/index.json"))
shards = {}
for f in index["files"]:
    with open(root + "/" + f["file"], "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data_start = 8 + n
        e = header["label_class"]
        assert e["dtype"] == "I64", e
        fh.seek(data_start + e["data_offsets"][0])
        values = np.frombuffer(fh.read(e["data_offsets"][1] - e["data_offsets"][0]), dtype="<i8")
    shards[f["file"]] = values.tolist()
ds = LatentDataset(root)
labels = {ds[i]["id"]: ds[i]["labels"]["class"] for i in range(len(ds))}
loader = torch.utils.data.DataLoader(ds, batch_sampler=BucketBatchSampler(ds, 4, seed=0), collate_fn=collate)
batch = next(iter(loader))
print(json.dumps({
  "shards": shards,
  "loader": {"classes": ds.classes, "n": len(ds), "labels": labels},
  "batch": {"cls": batch["labels"]["class"].tolist(), "dtype": str(batch["labels"]["class"].dtype),
            "flipped": list(batch["latents_flipped"].shape)},
}))
`);
}

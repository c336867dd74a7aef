import { join } from "node:path";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { PYTHON, pythonRequirement } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";
import { seededRandom } from "../lib/base/random.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { publishDirectory } from "../lib/store/publish.ts";
import { encodeNpy } from "../lib/format/npy.ts";
import { decodeNpz } from "../lib/format/npz.ts";
import { decodeSafetensors } from "../lib/format/safetensors.ts";
import type { Output } from "../lib/store/records.ts";
import { flippedId } from "../lib/image/flipped_ids.ts";
import { parseBucketName } from "../lib/image/buckets.ts";
import { labelKinds } from "../lib/package/columns.ts";
import { type PackageRow, packageRows } from "../lib/package/rows.ts";
import { type LayoutOptions, writeLayout } from "../lib/package/layout.ts";

const LOADER = new URL("../examples/torch_dataset.py", import.meta.url).pathname;
const LOADER_CHECK = new URL("./fixtures/loader_check.py", import.meta.url).pathname;
const TORCH = pythonRequirement("torch, numpy");

/** Ten images in three buckets over two splits, each with a flipped item; seeded latents. */
async function fixture(store: ObjectStore, seed: number) {
  const rnd = seededRandom(seed);
  console.log(`latent values seeded with ${seed}`);
  const buckets = ["64x32", "32x32", "32x64"];
  const ids = Array.from({ length: 10 }, (_, i) => `img${String(i).padStart(2, "0")}`);
  const optimized = new Map<string, Output>();
  const encoded = new Map<string, Output>();
  const preprocessed = new Map<string, Output>();
  const values = new Map<string, Float32Array>();
  const putLatent = async (item: string, kind: string, bucket: string) => {
    const { width, height } = parseBucketName(bucket);
    const data = Float32Array.from({ length: 4 * (height / 8) * (width / 8) }, () => rnd() * 4 - 2);
    values.set(`${item}/${kind}`, data);
    return await store.put(encodeNpy({ dtype: "<f4", shape: [1, 4, height / 8, width / 8], data }));
  };
  const labels: Record<string, Record<string, string | number | null>> = {};
  for (const [i, id] of ids.entries()) {
    const bucket = buckets[i % 3];
    const { width, height } = parseBucketName(bucket);
    labels[id] = {
      category: i < 7 ? "train" : "val",
      age_group: i === 4 ? null : ["20-29", "30-39"][i % 2],
      age_group_confidence: i === 4 ? null : 0.5 + i / 100,
    };
    for (const item of [id, flippedId(id)]) {
      const flip = item !== id;
      optimized.set(item, {
        objects: { latent: await putLatent(item, "latent", bucket) },
        meta: {
          loss_initial: 0.1 + i,
          loss_final: 0.05 + i,
          psnr_initial: 20 + i,
          psnr_final: 22 + i + (flip ? 0.5 : 0),
          ssim_initial: 0.5,
          ssim_final: 0.6,
          steps: 3 + i,
          stop: "max_steps",
          provider: "cpu",
        },
      });
      encoded.set(item, {
        objects: { latent: await putLatent(item, "initial", bucket) },
        meta: {},
      });
      preprocessed.set(item, {
        objects: { tensor: await store.put(new TextEncoder().encode(item)) },
        meta: {
          bucket,
          original_size: [height * 3 + i, width * 3],
          crop_coords_top_left: [i, flip ? 10 - i : 0],
          crop_box: [i, 0, height * 3, width * 3],
          target_size: [height, width],
        },
      });
    }
  }
  const splits = { train: ids.slice(0, 7), val: ids.slice(7) };
  const paths = Object.fromEntries(ids.map((id) => [id, `${id}.png`]));
  return { splits, paths, labels, optimized, encoded, preprocessed, values, ids };
}

function options(over: Partial<LayoutOptions>, rows: Map<string, PackageRow[]>): LayoutOptions {
  return {
    layout: "shards",
    formats: ["npz", "hdf5", "safetensors"],
    shardSize: 2,
    bucketed: true,
    columns: {
      flip: true,
      labelFields: labelKinds([...rows.values()].flat(), [
        "category",
        "age_group",
        "age_group_confidence",
      ]),
    },
    attributes: { scaling_factor: 0.18215 },
    shardContext: { scaling_factor: "0.18215" },
    ...over,
  };
}

Deno.test("shards: stable assignment by id within a bucket, index rows equal the stored latents, unchanged shards reused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-layout-" });
  try {
    const store = new ObjectStore(join(dir, "cache"));
    const f = await fixture(store, 16);
    const rows = packageRows({ ...f, flip: true });
    assertEquals([...rows.keys()], ["train", "val"]);
    // Rows by bucket name, then id.
    assertEquals(rows.get("train")!.map((r) => `${r.bucket}:${r.id}`), [
      "32x32:img01",
      "32x32:img04",
      "32x64:img02",
      "32x64:img05",
      "64x32:img00",
      "64x32:img03",
      "64x32:img06",
    ]);
    const first = await writeLayout(store, rows, options({}, rows));
    const files = Object.keys(first.files).sort();
    assertEquals(files, [
      "train/shards/32x32-00000.safetensors",
      "train/shards/32x64-00000.safetensors",
      "train/shards/64x32-00000.safetensors",
      "train/shards/64x32-00001.safetensors",
      "val/shards/32x32-00000.safetensors",
      "val/shards/32x64-00000.safetensors",
      "val/shards/64x32-00000.safetensors",
    ]);
    assertEquals([first.built, first.reused], [7, 0]);
    const index = first.index!;
    assertEquals(index.images.length, 10);
    assertEquals(index.buckets["64x32"], { images: 4, latent_shape: [4, 4, 8] });
    for (const image of index.images) {
      const st = decodeSafetensors(await store.get(first.files[image.file]));
      const per = 4 * parseBucketName(image.bucket).width * parseBucketName(image.bucket).height /
        64;
      const row = (name: string) =>
        (st.tensors[name].data as Float32Array).slice(image.row! * per, (image.row! + 1) * per);
      assertEquals(row(image.tensors.latents), f.values.get(`${image.id}/latent`));
      assertEquals(
        row(image.tensors.latents_flipped!),
        f.values.get(`${flippedId(image.id)}/latent`),
      );
      assertEquals(
        row(image.tensors.initial_latents_flipped!),
        f.values.get(`${flippedId(image.id)}/initial`),
      );
      assertEquals(JSON.parse(st.metadata.ids)[image.row!], image.id);
      assertEquals(st.metadata.bucket, image.bucket);
      const size = st.tensors.original_size.data as Int32Array;
      assertEquals([...size.slice(image.row! * 2, image.row! * 2 + 2)], image.original_size);
    }

    // The same rows again: every shard is found by its recipe, none is rebuilt.
    const reuse = (recipes: Record<string, string>) => async (recipe: string) =>
      recipes[recipe] && await store.has(recipes[recipe]) ? recipes[recipe] : null;
    const again = await writeLayout(store, rows, {
      ...options({}, rows),
      reuse: reuse(first.recipes),
    });
    assertEquals([again.built, again.reused], [0, 7]);
    assertEquals(again.files, first.files);

    // One image re-optimized: only its shard is rebuilt.
    const changed = new Float32Array(4 * 4 * 8).fill(0.25);
    f.optimized.set("img03", {
      ...f.optimized.get("img03")!,
      objects: {
        latent: await store.put(encodeNpy({ dtype: "<f4", shape: [1, 4, 4, 8], data: changed })),
      },
    });
    const rows2 = packageRows({ ...f, flip: true });
    const third = await writeLayout(store, rows2, {
      ...options({}, rows2),
      reuse: reuse(first.recipes),
    });
    assertEquals([third.built, third.reused], [1, 6]);
    const differs = files.filter((file) => third.files[file] !== first.files[file]);
    assertEquals(differs, ["train/shards/64x32-00000.safetensors"]);
    const shard = decodeSafetensors(await store.get(third.files[differs[0]]));
    assertEquals(JSON.parse(shard.metadata.ids), ["img00", "img03"]);
    assertEquals((shard.tensors.latents.data as Float32Array).slice(128, 256), changed);

    // Shards of at most 1,200 bytes hold one row of 64x32 with flips (4 latents of 512 bytes).
    const bytes = await writeLayout(store, rows, options({ shardSize: "3kB" }, rows));
    assertEquals(
      Object.keys(bytes.files).filter((p) => p.startsWith("train/shards/64x32")).length,
      3,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("per-image and split layouts: every image's arrays where the index says, buckets kept apart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-layout-" });
  try {
    const store = new ObjectStore(join(dir, "cache"));
    const f = await fixture(store, 17);
    const rows = packageRows({ ...f, flip: true });
    const perImage = await writeLayout(store, rows, options({ layout: "per_image" }, rows));
    assertEquals(Object.keys(perImage.files).length, 10);
    for (const image of perImage.index!.images) {
      assertEquals(image.file, `${image.split}/images/${image.id}.npz`);
      const npz = decodeNpz(await store.get(perImage.files[image.file]));
      assertEquals(npz.latent.shape, perImage.index!.buckets[image.bucket].latent_shape);
      assertEquals(npz.latent.data, f.values.get(`${image.id}/latent`));
      assertEquals(npz.latent_flipped.data, f.values.get(`${flippedId(image.id)}/latent`));
      assertEquals(npz.id.data, [image.id]);
      assertEquals(npz.bucket.data, [image.bucket]);
      assertEquals([...(npz.target_size.data as Int32Array)], image.target_size);
      assertEquals(npz.label_age_group.data, [String(image.labels.age_group ?? "")]);
    }
    // Again with the recipes of the first run: every file is found, none rebuilt.
    const again = await writeLayout(store, rows, {
      ...options({ layout: "per_image" }, rows),
      reuse: (recipe) => Promise.resolve(perImage.recipes[recipe] ?? null),
    });
    assertEquals([again.reused, again.built], [10, 0]);
    assertEquals(again.files, perImage.files);
    const split = await writeLayout(store, rows, options({ layout: "split" }, rows));
    assertEquals(Object.keys(split.files).sort(), [
      "train/latents.h5",
      "train/latents.npz",
      "train/latents.safetensors",
      "val/latents.h5",
      "val/latents.npz",
      "val/latents.safetensors",
    ]);
    const npz = decodeNpz(await store.get(split.files["train/latents.npz"]));
    assertEquals(npz.buckets.data, ["32x32", "32x64", "64x32"]);
    assertEquals(npz.latents_64x32.shape, [3, 4, 4, 8]);
    assertEquals(npz.ids_64x32.data, ["img00", "img03", "img06"]);
    assertEquals(npz.latents_32x64.shape, [2, 4, 8, 4]);
    const nan = (npz.label_age_group_confidence_32x32.data as Float32Array)[1];
    assert(Number.isNaN(nan), `a missing number is NaN, found ${nan}`);
    const image = split.index!.images.find((i) => i.id === "img03")!;
    assertEquals([image.file, image.row, image.tensors.latents], [
      "train/latents.safetensors",
      1,
      "latents_64x32",
    ]);
    assertEquals(split.index!.files.map((x) => [x.file, x.rows, x.bucket]), [
      ["train/latents.safetensors", 7, null],
      ["val/latents.safetensors", 3, null],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

testIf(TORCH, {
  name:
    "the PyTorch loader reads every layout: values equal the records, batches never mix buckets, flips read",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-layout-" });
    try {
      const store = new ObjectStore(join(dir, "cache"));
      const f = await fixture(store, 18);
      const rows = packageRows({ ...f, flip: true });
      const roots: Record<string, string> = {};
      const publish = async (name: string, files: Record<string, string>) => {
        roots[name] = join(dir, name);
        await publishDirectory(store, files, roots[name]);
      };
      for (const layout of ["shards", "per_image", "split"] as const) {
        const written = await writeLayout(store, rows, options({ layout }, rows));
        await publish(layout, { ...written.files, ...written.indexFiles });
      }
      // A dataset written before index/ existed: index.json alone.
      const old = await writeLayout(store, rows, options({}, rows));
      await publish("shards_index_json", {
        ...old.files,
        "index.json": old.indexFiles["index.json"],
      });
      // A dataset past the index.json limit: index/ alone.
      const big = await writeLayout(
        store,
        rows,
        options({ layout: "split", indexJsonMaxImages: 9 }, rows),
      );
      assertEquals(big.index, null);
      assert(!("index.json" in big.indexFiles), Object.keys(big.indexFiles).join());
      await publish("split_no_index_json", { ...big.files, ...big.indexFiles });
      const expected: Record<string, unknown> = {};
      for (const [id] of f.optimized) {
        if (id.endsWith("#flip")) continue;
        const row = [...rows.values()].flat().find((r) => r.id === id)!;
        expected[id] = {
          bucket: row.bucket,
          latents: [...f.values.get(`${id}/latent`)!],
          initial_latents: [...f.values.get(`${id}/initial`)!],
          latents_flipped: [...f.values.get(`${flippedId(id)}/latent`)!],
          original_size: row.image.conditioning.original_size,
          crop_coords_top_left: row.image.conditioning.crop_coords_top_left,
          crop_coords_top_left_flipped: row.flipped!.conditioning.crop_coords_top_left,
          target_size: row.image.conditioning.target_size,
          labels: row.labels,
        };
      }
      const expectedPath = join(dir, "expected.json");
      await Deno.writeTextFile(expectedPath, JSON.stringify(expected));
      const out = await new Deno.Command(PYTHON, {
        args: [LOADER_CHECK, LOADER, expectedPath, JSON.stringify(roots)],
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, stderr);
      const report = JSON.parse(new TextDecoder().decode(out.stdout));
      assertEquals(
        Object.fromEntries(
          Object.entries(report).map(([k, v]) => [k, (v as { index: string }).index]),
        ),
        {
          shards: "ColumnIndex",
          per_image: "ColumnIndex",
          split: "ColumnIndex",
          shards_index_json: "JsonIndex",
          split_no_index_json: "ColumnIndex",
        },
      );
      // Shards hold one bucket each, so the index gives where their latents start.
      assertEquals(
        Object.keys(roots).filter((k) => report[k].by_offset),
        ["shards"],
      );
      for (const layout of Object.keys(roots)) {
        assertEquals(report[layout].ids, f.ids, `${layout}: every image once`);
        assertEquals(report[layout].mixed, 0, `${layout}: no batch mixes buckets`);
        assertEquals(report[layout].checked, 10);
        assertEquals(report[layout].flipped_items, 7, `${layout}: the train split's flips`);
        assertEquals(report[layout].expand_len, 14);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

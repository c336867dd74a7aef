/**
 * Writes a dataset's latent files in the chosen layout — per split files, safetensors shards,
 * or one `.npz` per image — into the store, and describes them in the dataset's index
 * (`index/`, and `index.json` for small datasets).
 *
 * @module
 */
import { decodeNpy } from "../format/npy.ts";
import type { Hdf5Attribute } from "../format/hdf5.ts";
import type { NpzArray } from "../format/npz.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { ColumnOptions } from "./columns.ts";
import { type DatasetIndex, type IndexGroup, type Layout, tensorNames } from "./dataset_index.ts";
import { type FileFacts, safetensorsOffsets } from "./index_files.ts";
import { IndexWriter } from "./index_writer.ts";
import { perImageFile, writePerImage } from "./per_image.ts";
import { byBucket, type PackageRow } from "./rows.ts";
import { planShards, type ShardSize, writeShards } from "./shards.ts";
import {
  arrayName,
  encodeSplitFiles,
  SPLIT_FILES,
  splitArrays,
  type SplitFormat,
} from "./split_files.ts";

/** Options of {@linkcode writeLayout}. */
export interface LayoutOptions {
  layout: Layout;
  /** Formats of the split layout. */
  formats: readonly SplitFormat[];
  /** Images per shard, or bytes (`"256MB"`), for the shards layout. */
  shardSize: ShardSize;
  /** Whether the images are bucketed (bucket-suffixed array names in split files). */
  bucketed: boolean;
  columns: ColumnOptions;
  /** Class name → index, recorded in the index (class-folder datasets). */
  classToIdx?: Record<string, number>;
  /**
   * Facts every file carries (model digests, scaling factor, config): HDF5 attributes,
   * safetensors metadata. Shards carry only `shardContext`, so that a setting that changes no
   * latent keeps every shard.
   */
  attributes: Record<string, Hdf5Attribute>;
  /** Small arrays the split layout's npz files also hold (npz has no attributes). */
  npzExtras?: Record<string, NpzArray>;
  shardContext: Record<string, string>;
  /**
   * `index.json` is written beside `index/` while the dataset has at most this many images.
   * @default {INDEX_JSON_MAX_IMAGES}
   */
  indexJsonMaxImages?: number;
  /** A stored file an earlier run built from the same recipe, if still in the store. */
  reuse?: (recipe: string) => Promise<string | null>;
  signal?: AbortSignal;
}

/** What {@linkcode writeLayout} stored. */
export interface WrittenLayout {
  /** Dataset path → digest. */
  files: Record<string, string>;
  /** The index's files, stored: `index/…` (and `index.json` for a small dataset) → digest. */
  indexFiles: Record<string, string>;
  /** `index.json`, when the dataset is small enough to have one. */
  index: DatasetIndex | null;
  /** Recipe → digest of every shard or per-image file (what later runs can reuse). */
  recipes: Record<string, string>;
  /** Files taken from the store as they were, and files built. */
  reused: number;
  built: number;
}

/**
 * Stores the latent files of `rowsBySplit` in the layout asked for and builds their index.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy } from "../format/npy.ts";
 * import { ObjectStore } from "../store/objects.ts";
 * import { packageRows } from "./rows.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const npy = (shape: number[]) =>
 *   store.put(encodeNpy({ dtype: "<f4", shape, data: new Float32Array(shape.reduce((a, b) => a * b)) }));
 * const metrics = {
 *   loss_initial: 0.5, loss_final: 0.25, psnr_initial: 20, psnr_final: 24.5,
 *   ssim_initial: 0.7, ssim_final: 0.8, steps: 60, passes: 61, stop: "converged", provider: "cpu",
 * };
 * const latent = { objects: { latent: await npy([1, 4, 32, 32]) }, meta: metrics };
 * const tensor = {
 *   objects: { tensor: await npy([1, 3, 256, 256]) },
 *   meta: {
 *     bucket: "256x256", original_size: [256, 256], crop_coords_top_left: [0, 0],
 *     crop_box: [0, 0, 256, 256], target_size: [256, 256],
 *   },
 * };
 * const ids = ["00017", "00042"];
 * const rowsBySplit = packageRows({
 *   splits: { train: ids },
 *   paths: { "00017": "images/00017.png", "00042": "images/00042.png" },
 *   labels: { "00017": { category: "cat" }, "00042": { category: "dog" } },
 *   optimized: new Map(ids.map((id) => [id, latent])),
 *   encoded: new Map(ids.map((id) => [id, latent])),
 *   preprocessed: new Map(ids.map((id) => [id, tensor])),
 *   flip: false,
 * });
 * const rows = rowsBySplit.get("train")!;
 * const { files, index, indexFiles, built } = await writeLayout(store, rowsBySplit, {
 *   layout: "shards",
 *   formats: ["safetensors"],
 *   shardSize: 1000,
 *   bucketed: false,
 *   columns: { flip: false, labelFields: { category: "text" } },
 *   attributes: { scaling_factor: 0.18215 },
 *   shardContext: { scaling_factor: "0.18215" },
 * });
 * assert.deepEqual(Object.keys(files), ["train/shards/256x256-00000.safetensors"]);
 * assert.ok(indexFiles["index/header.json"] && indexFiles["index.json"]);
 * assert.equal(built, 1);
 * assert.equal(index?.images.length, 2);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function writeLayout(
  store: ObjectStore,
  rowsBySplit: ReadonlyMap<string, readonly PackageRow[]>,
  options: LayoutOptions,
): Promise<WrittenLayout> {
  const shapes = await latentShapes(store, rowsBySplit);
  const laid = options.layout === "shards"
    ? await shardLayout(store, rowsBySplit, shapes, options)
    : options.layout === "per_image"
    ? await perImageLayout(store, rowsBySplit, options)
    : await splitLayout(store, rowsBySplit, options);
  const { files, recipes, reused, built } = laid;
  const index = await datasetIndex(store, laid, shapes, options);
  return { files, indexFiles: index.files, index: index.json, recipes, reused, built };
}

/** The index of the files a layout stored, fed row by row in the dataset's order. */
async function datasetIndex(
  store: ObjectStore,
  { groups, files }: Laid,
  latentShapes: Record<string, number[]>,
  { layout, columns, classToIdx, indexJsonMaxImages }: LayoutOptions,
) {
  const writer = new IndexWriter({
    layout,
    flip: columns.flip,
    labelFields: columns.labelFields,
    classToIdx,
    jsonMaxImages: indexJsonMaxImages,
  });
  for (const { file, rows, batched, tensors } of groups) {
    for (const [i, row] of rows.entries()) {
      writer.add(row, { file, row: batched ? i : null, tensors });
    }
  }
  const facts: Record<string, FileFacts> = {};
  const buckets = new Map<string, Set<string>>();
  for (const group of groups) {
    if (!buckets.has(group.file)) buckets.set(group.file, new Set());
    buckets.get(group.file)!.add(group.bucket);
  }
  for (const group of groups) {
    const sha256 = files[group.file];
    facts[group.file] = { sha256 };
    // A safetensors file of one bucket has each latent tensor at one place: the index says
    // where, so a reader finds a row without parsing the file's header.
    if (
      group.batched && group.file.endsWith(".safetensors") && buckets.get(group.file)!.size === 1
    ) {
      const rows = group.rows.length;
      facts[group.file].offsets = await safetensorsOffsets(store.path(sha256), group.tensors, rows);
    }
  }
  const written = writer.finish({ files: facts, latentShapes });
  const bytes = { ...written.files };
  if (written.json) bytes["index.json"] = new TextEncoder().encode(JSON.stringify(written.json));
  const stored: Record<string, string> = {};
  for (const [name, b] of Object.entries(bytes)) stored[name] = await store.put(b);
  return { files: stored, json: written.json };
}

/** What one layout stored, and the index groups that describe it. */
interface Laid extends Omit<WrittenLayout, "index" | "indexFiles"> {
  groups: IndexGroup[];
}

/** Safetensors shards of about `shardSize` each, per split and bucket. */
async function shardLayout(
  store: ObjectStore,
  rowsBySplit: ReadonlyMap<string, readonly PackageRow[]>,
  shapes: Record<string, number[]>,
  { columns, reuse, signal, shardSize, shardContext }: LayoutOptions,
): Promise<Laid> {
  const perLatent = (bucket: string) => 4 * shapes[bucket].reduce((a, b) => a * b, 1);
  const plan = planShards(rowsBySplit, {
    size: shardSize,
    // The latents, and about 128 bytes of metrics and conditioning.
    rowBytes: (bucket) =>
      perLatent(bucket) * (columns.flip ? 2 : 1) * (columns.encodeOnly ? 1 : 2) + 128,
  });
  const written = await writeShards(store, plan, {
    context: shardContext,
    columns,
    latentShape: (bucket) => shapes[bucket],
    reuse,
    signal,
  });
  const groups = plan.map((shard) => ({
    ...shard,
    tensors: tensorNames((n) => n, columns.flip, columns.encodeOnly),
    batched: true,
  }));
  return { ...written, files: { ...written.files }, groups };
}

/** One `.npz` per image. */
async function perImageLayout(
  store: ObjectStore,
  rowsBySplit: ReadonlyMap<string, readonly PackageRow[]>,
  { columns, reuse, signal }: LayoutOptions,
): Promise<Laid> {
  const rows = [...rowsBySplit.values()].flat();
  const written = await writePerImage(store, rows, { columns, reuse, signal });
  const singular = tensorNames(
    (n) => n.replace("latents", "latent"),
    columns.flip,
    columns.encodeOnly,
  );
  const groups = rows.map((row) => ({
    file: perImageFile(row.split, row.id),
    split: row.split,
    bucket: row.bucket,
    rows: [row],
    tensors: singular,
    batched: false,
  }));
  return {
    files: { ...written.files },
    recipes: written.recipes,
    reused: written.reused,
    built: rows.length - written.reused,
    groups,
  };
}

/** Per split, one file in each of `formats` (with buckets, arrays per bucket). */
async function splitLayout(
  store: ObjectStore,
  rowsBySplit: ReadonlyMap<string, readonly PackageRow[]>,
  { columns, signal, bucketed, formats, attributes, npzExtras }: LayoutOptions,
): Promise<Laid> {
  const files: Record<string, string> = {};
  const groups: IndexGroup[] = [];
  let built = 0;
  // The index points at the file a loader reads best: safetensors, else npz, else HDF5.
  const format = (["safetensors", "npz", "hdf5"] as const).find((f) => formats.includes(f))!;
  for (const [split, rows] of rowsBySplit) {
    signal?.throwIfAborted();
    const arrays = await splitArrays(store, rows, { bucketed, columns });
    const encoded = await encodeSplitFiles(arrays, formats, {
      attributes: { ...attributes, split },
      npzExtras,
    });
    for (const [name, bytes] of Object.entries(encoded)) {
      files[`${split}/${name}`] = await store.put(bytes);
      built++;
    }
    for (const [bucket, group] of byBucket(rows)) {
      groups.push({
        file: `${split}/${SPLIT_FILES[format]}`,
        split,
        bucket,
        rows: group,
        tensors: tensorNames(
          (n) => arrayName(n, bucket, bucketed),
          columns.flip,
          columns.encodeOnly,
        ),
        batched: true,
      });
    }
  }
  return { files, recipes: {}, reused: 0, built, groups };
}

/** Latent shape (C, h, w) per bucket, from the first latent of each. */
async function latentShapes(
  store: ObjectStore,
  rowsBySplit: ReadonlyMap<string, readonly PackageRow[]>,
): Promise<Record<string, number[]>> {
  const shapes: Record<string, number[]> = {};
  for (const rows of rowsBySplit.values()) {
    for (const row of rows) {
      if (shapes[row.bucket]) continue;
      const latent = decodeNpy(await store.get(row.image.latent), `latent of ${row.id}`);
      shapes[row.bucket] = latent.shape.slice(1);
    }
  }
  return shapes;
}

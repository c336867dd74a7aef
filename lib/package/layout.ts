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
import { type DatasetIndex, type Layout, type TensorNames, tensorNames } from "./dataset_index.ts";
import { type FileFacts, safetensorsOffsets } from "./index_files.ts";
import { IndexWriter } from "./index_writer.ts";
import { perImageFile, writePerImage } from "./per_image.ts";
import { byBucket, type PackageRow } from "./rows.ts";
import { imagesPerShard, shardFile, type ShardSize, writeShards } from "./shards.ts";
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
 * Stores the latent files of the dataset's rows in the layout asked for and builds their index.
 * The rows come split by split, each split bucket by bucket (in name order), each bucket in id
 * order — as a Map of every split's rows, or as streams. Streamed, the shards and per-image
 * layouts hold one shard's rows, or a few images', at a time; a split file holds its split.
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
  rows: DatasetRows | ReadonlyMap<string, readonly PackageRow[]>,
  options: LayoutOptions,
): Promise<WrittenLayout> {
  const { layout, columns, classToIdx, indexJsonMaxImages } = options;
  const sink: LayoutSink = {
    store,
    options,
    index: new IndexWriter({
      layout,
      flip: columns.flip,
      labelFields: columns.labelFields,
      classToIdx,
      jsonMaxImages: indexJsonMaxImages,
    }),
    facts: {},
    shapes: {},
    written: { files: {}, recipes: {}, reused: 0, built: 0 },
  };
  const write = layout === "shards"
    ? shardSplit
    : layout === "per_image"
    ? perImageSplit
    : splitFiles;
  for await (const split of rows instanceof Map ? rowSplits(rows) : rows as DatasetRows) {
    options.signal?.throwIfAborted();
    await write(sink, split);
  }
  const index = sink.index.finish({ files: sink.facts, latentShapes: sink.shapes });
  const bytes = { ...index.files };
  if (index.json) bytes["index.json"] = new TextEncoder().encode(JSON.stringify(index.json));
  const indexFiles: Record<string, string> = {};
  for (const [name, b] of Object.entries(bytes)) indexFiles[name] = await store.put(b);
  return { ...sink.written, indexFiles, index: index.json };
}

/** One bucket of a split: its rows in id order. */
export interface RowGroup {
  bucket: string;
  rows: Iterable<PackageRow> | AsyncIterable<PackageRow>;
}

/** One split: its buckets in name order (none for a split without images). */
export interface RowSplit {
  split: string;
  groups: Iterable<RowGroup> | AsyncIterable<RowGroup>;
}

/** The dataset's rows, split by split. */
export type DatasetRows = Iterable<RowSplit> | AsyncIterable<RowSplit>;

/**
 * The rows of every split, as {@linkcode writeLayout} reads them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PackageRow } from "./rows.ts";
 *
 * const rows = [{ id: "a", bucket: "256x256" }, { id: "b", bucket: "320x192" }] as PackageRow[];
 * const [train] = rowSplits(new Map([["train", rows]]));
 * assert.deepEqual([...train.groups].map((g) => g.bucket), ["256x256", "320x192"]);
 * ```
 */
export function rowSplits(
  rowsBySplit: ReadonlyMap<string, readonly PackageRow[]>,
): { split: string; groups: RowGroup[] }[] {
  return [...rowsBySplit].map(([split, rows]) => ({
    split,
    groups: [...byBucket(rows)].map(([bucket, group]) => ({ bucket, rows: group })),
  }));
}

/** What the layouts write into: the index, the facts of each file, what was stored. */
interface LayoutSink {
  store: ObjectStore;
  options: LayoutOptions;
  index: IndexWriter;
  facts: Record<string, FileFacts>;
  /** Latent shape (C, h, w) per bucket, from the first latent of each. */
  shapes: Record<string, number[]>;
  written: Omit<WrittenLayout, "index" | "indexFiles">;
}

/** Notes the latent shape of a row's bucket, from its latent, when it is the bucket's first. */
async function noteShape(sink: LayoutSink, row: PackageRow): Promise<void> {
  if (sink.shapes[row.bucket]) return;
  const latent = decodeNpy(await sink.store.get(row.image.latent), `latent of ${row.id}`);
  sink.shapes[row.bucket] = latent.shape.slice(1);
}

/** A file's rows in the index, and its facts: where a bucket's tensors start, when known. */
async function indexFile(
  sink: LayoutSink,
  file: string,
  rows: readonly PackageRow[],
  { tensors, offsets }: { tensors: TensorNames; offsets: boolean },
): Promise<void> {
  const sha256 = sink.written.files[file];
  for (const [i, row] of rows.entries()) sink.index.add(row, { file, row: i, tensors });
  sink.facts[file] = { sha256 };
  // A safetensors file of one bucket has each latent tensor at one place: the index says
  // where, so a reader finds a row without parsing the file's header.
  if (offsets) {
    sink.facts[file].offsets = await safetensorsOffsets(
      sink.store.path(sha256),
      tensors,
      rows.length,
    );
  }
}

/** Safetensors shards of about `shardSize` each, per split and bucket, one shard at a time. */
async function shardSplit(sink: LayoutSink, { split, groups }: RowSplit): Promise<void> {
  const { store, options: { columns, reuse, signal, shardSize, shardContext } } = sink;
  const perLatent = (bucket: string) => 4 * sink.shapes[bucket].reduce((a, b) => a * b, 1);
  // The latents, and about 128 bytes of metrics and conditioning.
  const perShard = imagesPerShard(
    shardSize,
    (bucket) => perLatent(bucket) * (columns.flip ? 2 : 1) * (columns.encodeOnly ? 1 : 2) + 128,
  );
  for await (const { bucket, rows } of groups) {
    let n = 0;
    let buffer: PackageRow[] = [];
    const flush = async () => {
      signal?.throwIfAborted();
      const shard = { file: shardFile(split, bucket, n++), split, bucket, rows: buffer };
      const written = await writeShards(store, [shard], {
        context: shardContext,
        columns,
        latentShape: (b) => sink.shapes[b],
        reuse,
      });
      Object.assign(sink.written.files, written.files);
      Object.assign(sink.written.recipes, written.recipes);
      sink.written.reused += written.reused;
      sink.written.built += written.built;
      const tensors = tensorNames((name) => name, columns.flip, columns.encodeOnly);
      await indexFile(sink, shard.file, buffer, { tensors, offsets: true });
      buffer = [];
    };
    for await (const row of rows) {
      await noteShape(sink, row);
      buffer.push(row);
      if (buffer.length === perShard(bucket)) await flush();
    }
    if (buffer.length > 0) await flush();
  }
}

/** Images packed at once in the per-image layout. */
const PER_IMAGE_BATCH = 64;

/** One `.npz` per image, a few images at a time. */
async function perImageSplit(sink: LayoutSink, { split, groups }: RowSplit): Promise<void> {
  const { store, options: { columns, reuse, signal } } = sink;
  const singular = tensorNames(
    (n) => n.replace("latents", "latent"),
    columns.flip,
    columns.encodeOnly,
  );
  let buffer: PackageRow[] = [];
  const flush = async () => {
    const written = await writePerImage(store, buffer, { columns, reuse, signal });
    Object.assign(sink.written.files, written.files);
    Object.assign(sink.written.recipes, written.recipes);
    sink.written.reused += written.reused;
    sink.written.built += buffer.length - written.reused;
    for (const row of buffer) {
      const file = perImageFile(split, row.id);
      sink.index.add(row, { file, row: null, tensors: singular });
      sink.facts[file] = { sha256: sink.written.files[file] };
    }
    buffer = [];
  };
  for await (const { rows } of groups) {
    for await (const row of rows) {
      await noteShape(sink, row);
      buffer.push(row);
      if (buffer.length === PER_IMAGE_BATCH) await flush();
    }
  }
  if (buffer.length > 0) await flush();
}

/** Per split, one file in each of `formats` (with buckets, arrays per bucket): in memory. */
async function splitFiles(sink: LayoutSink, { split, groups }: RowSplit): Promise<void> {
  const { store, options: { columns, bucketed, formats, attributes, npzExtras } } = sink;
  const byGroup: { bucket: string; rows: PackageRow[] }[] = [];
  for await (const { bucket, rows } of groups) {
    const group = { bucket, rows: [] as PackageRow[] };
    for await (const row of rows) {
      await noteShape(sink, row);
      group.rows.push(row);
    }
    byGroup.push(group);
  }
  const arrays = await splitArrays(store, byGroup.flatMap((g) => g.rows), { bucketed, columns });
  const encoded = await encodeSplitFiles(arrays, formats, {
    attributes: { ...attributes, split },
    npzExtras,
  });
  for (const [name, bytes] of Object.entries(encoded)) {
    sink.written.files[`${split}/${name}`] = await store.put(bytes);
    sink.written.built++;
  }
  // The index points at the file a loader reads best: safetensors, else npz, else HDF5.
  const format = (["safetensors", "npz", "hdf5"] as const).find((f) => formats.includes(f))!;
  const file = `${split}/${SPLIT_FILES[format]}`;
  for (const { bucket, rows } of byGroup) {
    await indexFile(sink, file, rows, {
      tensors: tensorNames((n) => arrayName(n, bucket, bucketed), columns.flip, columns.encodeOnly),
      offsets: format === "safetensors" && byGroup.length === 1,
    });
  }
}

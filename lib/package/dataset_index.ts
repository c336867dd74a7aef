/**
 * `index.json`: where every image of the dataset is — the file, the tensor names and the row —
 * with its bucket, conditioning and labels, whatever the layout. The PyTorch loader
 * (`examples/torch_dataset.py`) reads it; so can any script.
 *
 * @module
 */
import type { Conditioning } from "../image/preprocess.ts";
import type { ImageLabels } from "../dataset/image_labels.ts";
import type { LabelKind } from "./columns.ts";
import type { PackageRow } from "./rows.ts";

/** Bumped when a field of `index.json` changes meaning or goes away (new fields do not). */
export const INDEX_SCHEMA_VERSION = 1;

/** How the dataset's files are laid out. */
export type Layout = "split" | "shards" | "per_image";

/** The names of an image's tensors in its file. */
export interface TensorNames {
  latents: string;
  /** Absent with `optimize.method: "none"`. */
  initial_latents?: string;
  latents_flipped?: string;
  initial_latents_flipped?: string;
}

/** A file and the rows it holds, in order. */
export interface IndexGroup {
  file: string;
  split: string;
  bucket: string;
  rows: readonly PackageRow[];
  tensors: TensorNames;
  /**
   * Whether the tensors have a leading row axis (shards, split files) or hold one image each
   * (per-image files, `row` is then `null`).
   */
  batched: boolean;
}

/** One file of the index. */
export interface IndexFile {
  file: string;
  split: string;
  /** The bucket of every row, or `null` for a split file holding several. */
  bucket: string | null;
  rows: number;
  /** sha256 of the file's bytes. */
  sha256: string;
}

/** One image of the index. */
export interface IndexImage extends Conditioning {
  id: string;
  split: string;
  bucket: string;
  /** The file that holds its latents (a shard, a split file, its own file). */
  file: string;
  /** Row of its latents in every tensor of `file` (null for per-image files). */
  row: number | null;
  tensors: TensorNames;
  /** With flips: the crop offset of the flipped image. */
  crop_coords_top_left_flipped?: [number, number];
  labels: ImageLabels;
  /** Its caption, when the source gave one (a tar's `{key}.txt`, a Parquet column). */
  caption?: string;
  /** Its other metadata (a tar's `{key}.json`, other Parquet columns). */
  meta?: { [key: string]: unknown };
}

/** The whole `index.json`. */
export interface DatasetIndex {
  schema_version: number;
  layout: Layout;
  /** Whether every image has flipped latents. */
  flip: boolean;
  /** Label fields and whether each is a number, text or an integer. */
  label_fields: Record<string, LabelKind>;
  /** Class name → the class index in `labels.class` (class-folder datasets). */
  class_to_idx?: Record<string, number>;
  /** Per bucket: images, and the latent shape (C, h, w). */
  buckets: Record<string, { images: number; latent_shape: number[] }>;
  files: IndexFile[];
  images: IndexImage[];
}

/**
 * Builds the index of a dataset from its files' groups of rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy } from "../format/npy.ts";
 * import { ObjectStore } from "../store/objects.ts";
 * import { packageRows } from "./rows.ts";
 * import { tensorNames } from "./dataset_index.ts";
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
 * const index = datasetIndex({
 *   layout: "split",
 *   flip: false,
 *   labelFields: { category: "text" },
 *   groups: [{
 *     file: "train/latents.safetensors", split: "train", bucket: "256x256", rows,
 *     tensors: tensorNames((n) => n, false), batched: true,
 *   }],
 *   digests: { "train/latents.safetensors": "ab".repeat(32) },
 *   latentShapes: { "256x256": [4, 32, 32] },
 * });
 * assert.deepEqual(index.buckets, { "256x256": { images: 2, latent_shape: [4, 32, 32] } });
 * assert.equal(index.images[1].id, "00042");
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export function datasetIndex(
  { layout, flip, labelFields, classToIdx, groups, digests, latentShapes }: {
    layout: Layout;
    flip: boolean;
    labelFields: Record<string, LabelKind>;
    classToIdx?: Record<string, number>;
    groups: readonly IndexGroup[];
    /** sha256 of each file, by dataset path. */
    digests: Readonly<Record<string, string>>;
    /** Latent shape (C, h, w) per bucket. */
    latentShapes: Readonly<Record<string, number[]>>;
  },
): DatasetIndex {
  const files: IndexFile[] = [];
  const images: IndexImage[] = [];
  const buckets: DatasetIndex["buckets"] = {};
  for (const group of groups) {
    const last = files.at(-1);
    if (last?.file === group.file) {
      // A split file holds every bucket of its split.
      last.rows += group.rows.length;
      if (last.bucket !== group.bucket) last.bucket = null;
    } else {
      files.push({
        file: group.file,
        split: group.split,
        bucket: group.bucket,
        rows: group.rows.length,
        sha256: digests[group.file],
      });
    }
    for (const [i, row] of group.rows.entries()) {
      const c = row.image.conditioning;
      const image: IndexImage = {
        id: row.id,
        split: row.split,
        bucket: row.bucket,
        file: group.file,
        row: group.batched ? i : null,
        tensors: group.tensors,
        original_size: c.original_size,
        crop_coords_top_left: c.crop_coords_top_left,
        crop_box: c.crop_box,
        target_size: c.target_size,
        labels: row.labels,
      };
      if (row.caption !== undefined) image.caption = row.caption;
      if (row.meta !== undefined) image.meta = row.meta;
      if (flip && row.flipped) {
        image.crop_coords_top_left_flipped = row.flipped.conditioning.crop_coords_top_left;
      }
      images.push(image);
      buckets[row.bucket] ??= { images: 0, latent_shape: latentShapes[row.bucket] ?? [] };
      buckets[row.bucket].images++;
    }
  }
  return {
    schema_version: INDEX_SCHEMA_VERSION,
    layout,
    flip,
    label_fields: labelFields,
    ...(classToIdx ? { class_to_idx: classToIdx } : {}),
    buckets: Object.fromEntries(Object.entries(buckets).sort(([a], [b]) => a < b ? -1 : 1)),
    files,
    images,
  };
}

/**
 * The tensor names of one bucket's rows: plain, or suffixed with the bucket (with
 * `encodeOnly`, no `initial_*`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(tensorNames((n) => `${n}_320x192`, true).latents_flipped, "latents_flipped_320x192");
 * ```
 */
export function tensorNames(
  name: (base: string) => string,
  flip: boolean,
  encodeOnly = false,
): TensorNames {
  const names: TensorNames = { latents: name("latents") };
  if (!encodeOnly) names.initial_latents = name("initial_latents");
  if (flip) {
    names.latents_flipped = name("latents_flipped");
    if (!encodeOnly) names.initial_latents_flipped = name("initial_latents_flipped");
  }
  return names;
}

/**
 * `index.json`: where every image of the dataset is — the file, the tensor names and the row —
 * with its bucket, conditioning and labels, whatever the layout, as one JSON document. Any script
 * reads it; it is written for datasets of up to {@linkcode INDEX_JSON_MAX_IMAGES} images, beside
 * the columnar index (`index/`, see `index_writer.ts`) that the PyTorch loader
 * (`examples/torch_dataset.py`) memory-maps at any size. One JSON entry per image would take
 * tens of seconds and gigabytes to open at a million images.
 *
 * @module
 */
import type { Conditioning } from "../image/preprocess.ts";
import type { ImageLabels } from "../dataset/image_labels.ts";
import type { LabelKind } from "./columns.ts";
import type { PackageRow } from "./rows.ts";

/** Bumped when a field of `index.json` changes meaning or goes away (new fields do not). */
export const INDEX_SCHEMA_VERSION = 1;

/** The largest dataset (in images) that also gets `index.json`. */
export const INDEX_JSON_MAX_IMAGES = 100_000;

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

/** Where an image's latents are: its file, its row there, and the names of its tensors. */
export interface ImagePlace {
  file: string;
  /** Its row in every tensor of `file`, or `null` when the file holds this image alone. */
  row: number | null;
  tensors: TensorNames;
}

/**
 * The `index.json` entry of one image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PackageRow } from "./rows.ts";
 *
 * // Only the fields the entry reads matter here.
 * const row = {
 *   id: "00017", split: "train", bucket: "256x256", labels: { category: "cat" },
 *   image: { conditioning: {
 *     original_size: [512, 512], crop_coords_top_left: [0, 0], crop_box: [0, 0, 512, 512],
 *     target_size: [256, 256],
 *   } },
 *   flipped: null,
 * } as unknown as PackageRow;
 * const place = { file: "train/latents.safetensors", row: 3, tensors: { latents: "latents" } };
 * const image = indexImage(row, place, false);
 * assert.deepEqual([image.file, image.row, image.labels.category], [place.file, 3, "cat"]);
 * ```
 */
export function indexImage(row: PackageRow, place: ImagePlace, flip: boolean): IndexImage {
  const c = row.image.conditioning;
  const image: IndexImage = {
    id: row.id,
    split: row.split,
    bucket: row.bucket,
    file: place.file,
    row: place.row,
    tensors: place.tensors,
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
  return image;
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

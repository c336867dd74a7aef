/**
 * The rows of a dataset: per split, the images whose every item finished (the image, and with
 * `preprocess.flip` its flipped item too), each with the digests of its latents, its metrics,
 * its bucket, its conditioning and its labels, ordered by bucket and then by id (by the ids'
 * UTF-8 bytes, the order the engine streams items in). That order is
 * the order of every array, shard and index the package writes, so an image's place depends only
 * on the ids of its split and bucket.
 *
 * @module
 */
import type { Output } from "../store/records.ts";
import type { Conditioning } from "../image/preprocess.ts";
import { flippedId } from "../image/flipped_ids.ts";
import { compareIds } from "../dag/item_order.ts";
import type { ImageLabels } from "../dataset/image_labels.ts";
import type { ImageStages, ItemStages } from "./upstream_images.ts";

/** What `optimize` records per item. */
export interface OptimizeMetrics {
  loss_initial: number;
  loss_final: number;
  psnr_initial: number;
  psnr_final: number;
  ssim_initial: number;
  ssim_final: number;
  steps: number;
  /** Loss-and-gradient evaluations, line searches included. */
  passes: number;
  stop: string;
  provider: string;
}

/** One optimized item: its latents (digests of `.npy` objects), metrics and conditioning. */
export interface PackagedLatent {
  /** The item id (`<id>`, or `<id>#flip`). */
  item: string;
  /** Digest of the optimized latent. */
  latent: string;
  /** Digest of the encoder's latent. */
  initial: string;
  /** Digest of the preprocessed tensor (the pixels the latents reconstruct). */
  tensor: string;
  /** `null` with `optimize.method: "none"` (the latent is the encoder's). */
  metrics: OptimizeMetrics | null;
  conditioning: Conditioning;
}

/** One image of the dataset. */
export interface PackageRow {
  id: string;
  split: string;
  /** Relative path of the source image. */
  path: string;
  /** Bucket name `WxH`. */
  bucket: string;
  image: PackagedLatent;
  /** The flipped item, when `preprocess.flip` is on. */
  flipped: PackagedLatent | null;
  labels: ImageLabels;
  /** Its caption, when the source gave one. */
  caption?: string;
  /** Its other metadata, when the source gave some. */
  meta?: { [key: string]: unknown };
  /** Digest of optimize's loss curve of the image, when it recorded one (for the report). */
  curve?: string;
}

/** What label-split says of the images, and how the rows are made. */
export interface RowFacts {
  /** Relative source path per id. */
  paths: Readonly<Record<string, string>>;
  /** Labels per id (label-split's `labels`); images without get `{}`. */
  labels: Readonly<Record<string, ImageLabels>>;
  /** Caption and other metadata per id, for the images that have them. */
  captions?: Readonly<Record<string, string>>;
  meta?: Readonly<Record<string, { [key: string]: unknown }>>;
  /** Whether each image must also have its flipped item. */
  flip: boolean;
  /** Whether the latents are the encoder's (`optimize.method: "none"`): no metrics. */
  encodeOnly?: boolean;
}

/** The upstream outputs the rows are made of. */
export interface RowSources extends RowFacts {
  /** Image ids per split (label-split's `splits`). */
  splits: Record<string, string[]>;
  optimized: ReadonlyMap<string, Output>;
  encoded: ReadonlyMap<string, Output>;
  preprocessed: ReadonlyMap<string, Output>;
}

/** What preprocess records per item that the rows use. */
interface PreprocessMeta extends Conditioning {
  bucket: string;
}

/**
 * The rows of every split, ordered by bucket then id. An image is left out unless every item it
 * needs was optimized (its failure is reported where the item failed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy } from "../format/npy.ts";
 * import { ObjectStore } from "../store/objects.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const npy = (shape: number[]) =>
 *   store.put(encodeNpy({ dtype: "<f4", shape, data: new Float32Array(shape.reduce((a, b) => a * b)) }));
 * const metrics = {
 *   loss_initial: 0.5, loss_final: 0.25, psnr_initial: 20, psnr_final: 24.5,
 *   ssim_initial: 0.7, ssim_final: 0.8, steps: 60, stop: "converged", provider: "cpu",
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
 *
 * const rows = rowsBySplit.get("train")!;
 * assert.deepEqual(rows.map((r) => [r.id, r.bucket, r.labels.category]), [
 *   ["00017", "256x256", "cat"],
 *   ["00042", "256x256", "dog"],
 * ]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export function packageRows(sources: RowSources): Map<string, PackageRow[]> {
  const out = new Map<string, PackageRow[]>();
  const stages = (item: string) => {
    const entry = (outputs: ReadonlyMap<string, Output>) => {
      const out = outputs.get(item);
      return out && { id: item, out, key: "", ms: 0 };
    };
    return {
      optimize: entry(sources.optimized),
      encode: entry(sources.encoded),
      preprocess: entry(sources.preprocessed),
    } as unknown as ItemStages;
  };
  for (const split of Object.keys(sources.splits).sort()) {
    const rows: PackageRow[] = [];
    for (const id of sources.splits[split]) {
      const flipped = sources.flip ? stages(flippedId(id)) : null;
      const row = packageRow({ id, split, image: stages(id), flipped }, sources);
      if (row) rows.push(row);
    }
    out.set(split, sortRows(rows));
  }
  return out;
}

/**
 * The row of one image, from what every stage recorded for it; null unless every item it needs
 * was optimized (its failure is reported where the item failed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Output } from "../store/records.ts";
 *
 * const entry = (out: Output) =>
 *   ({ id: "00017", out, key: "k", ms: 1 });
 * const latent = entry({ objects: { latent: "l".repeat(64) }, meta: null });
 * const tensor = entry({
 *   objects: { tensor: "t".repeat(64) },
 *   meta: {
 *     bucket: "256x256", original_size: [256, 256], crop_coords_top_left: [0, 0],
 *     crop_box: [0, 0, 256, 256], target_size: [256, 256],
 *   },
 * });
 * const stages = {
 *   "fetch-images": undefined, "verify-sizes": undefined, preprocess: tensor, encode: latent,
 *   optimize: latent,
 * };
 * const row = packageRow({ id: "00017", split: "train", image: stages, flipped: null }, {
 *   paths: { "00017": "images/00017.png" }, labels: {}, flip: false, encodeOnly: true,
 * });
 * assert.deepEqual([row?.bucket, row?.path, row?.image.metrics], ["256x256", "images/00017.png", null]);
 * ```
 */
export function packageRow(image: ImageStages, facts: RowFacts): PackageRow | null {
  const { id } = image;
  const latent = latentOf(image.image, id, facts);
  const flipped = facts.flip && image.flipped
    ? latentOf(image.flipped, flippedId(id), facts)
    : null;
  if (latent === null || (facts.flip && flipped === null)) return null;
  const curve = image.image.optimize!.out.objects.curve;
  return {
    id,
    split: image.split,
    path: facts.paths[id],
    bucket: (image.image.preprocess!.out.meta as unknown as PreprocessMeta).bucket,
    image: latent,
    flipped,
    labels: facts.labels[id] ?? {},
    ...(facts.captions?.[id] !== undefined ? { caption: facts.captions[id] } : {}),
    ...(facts.meta?.[id] !== undefined ? { meta: facts.meta[id] } : {}),
    ...(curve !== undefined ? { curve } : {}),
  };
}

/**
 * Rows in the dataset's order: by bucket, then by id (as the engine orders ids, see
 * `compareIds`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PackageRow } from "./rows.ts";
 *
 * const rows = [["b", "256x256"], ["a", "320x192"], ["a", "256x256"]]
 *   .map(([id, bucket]) => ({ id, bucket }) as PackageRow);
 * assert.deepEqual(sortRows(rows).map((r) => `${r.bucket}/${r.id}`), ["256x256/a", "256x256/b", "320x192/a"]);
 * ```
 */
export function sortRows(rows: PackageRow[]): PackageRow[] {
  return rows.sort((a, b) => compare(a.bucket, b.bucket) || compareIds(a.id, b.id));
}

/**
 * Rows grouped by bucket, buckets in name order (each group keeps the rows' order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PackageRow } from "./rows.ts";
 *
 * // Only the bucket matters here.
 * const rows = ["320x192", "256x256", "320x192"].map((bucket, i) => ({ id: `${i}`, bucket }));
 * const groups = byBucket(rows as PackageRow[]);
 * assert.deepEqual([...groups].map(([b, g]) => [b, g.map((r) => r.id)]), [
 *   ["256x256", ["1"]],
 *   ["320x192", ["0", "2"]],
 * ]);
 * ```
 */
export function byBucket(rows: readonly PackageRow[]): Map<string, PackageRow[]> {
  const out = new Map<string, PackageRow[]>();
  for (const row of rows) {
    const group = out.get(row.bucket);
    if (group) group.push(row);
    else out.set(row.bucket, [row]);
  }
  return new Map([...out].sort(([a], [b]) => compare(a, b)));
}

function latentOf(stages: ItemStages, item: string, facts: RowFacts): PackagedLatent | null {
  const optimized = stages.optimize?.out;
  const encoded = stages.encode?.out;
  const preprocessed = stages.preprocess?.out;
  if (!optimized || !encoded || !preprocessed) return null;
  const meta = preprocessed.meta as unknown as PreprocessMeta;
  return {
    item,
    latent: optimized.objects.latent,
    initial: encoded.objects.latent,
    tensor: preprocessed.objects.tensor,
    metrics: facts.encodeOnly ? null : optimized.meta as unknown as OptimizeMetrics,
    conditioning: {
      original_size: meta.original_size,
      crop_coords_top_left: meta.crop_coords_top_left,
      crop_box: meta.crop_box,
      target_size: meta.target_size,
    },
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

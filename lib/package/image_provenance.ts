/**
 * What `manifest.json` says about each image beyond its provenance keys: its bucket, its
 * conditioning (SDXL's original size, crop offset, crop box, target size), its labels and, with
 * flips, its flipped item. The manifest's schema version lives here with the fields it names.
 *
 * @module
 */
import type { Conditioning } from "../image/preprocess.ts";
import { flippedId } from "../image/flipped_ids.ts";
import type { ImageLabels } from "../dataset/image_labels.ts";
import { type ImageStages, type ItemStages, PROVENANCE_STAGES } from "./upstream_images.ts";

/**
 * Version of `manifest.json`'s schema: 2 added `schema_version`, `layout`, `buckets`, and per
 * image `bucket`, the conditioning fields, `labels` and `flipped` (an unversioned manifest is 1).
 */
export const MANIFEST_SCHEMA_VERSION = 2;

/** The manifest fields of one image that come from preprocess and the labels. */
export interface ImageConditioning extends Partial<Conditioning> {
  /** Bucket name `WxH`, or null when the image was never preprocessed (it failed before). */
  bucket: string | null;
  labels: ImageLabels;
  /** With flips: the flipped item's id, crop and action keys. */
  flipped?: {
    id: string;
    crop_coords_top_left: [number, number] | null;
    crop_box: [number, number, number, number] | null;
    keys: Record<string, string | null>;
  };
}

/**
 * An image's bucket, conditioning, labels and flipped item for `manifest.json`, from what each
 * stage recorded for it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const preprocess = {
 *   id: "00017", key: "k".repeat(64), ms: 1,
 *   out: {
 *     objects: {},
 *     meta: {
 *       bucket: "256x256", original_size: [1024, 768], crop_coords_top_left: [0, 32],
 *       crop_box: [0, 128, 768, 896], target_size: [256, 256],
 *     },
 *   },
 * };
 * const none = { "fetch-images": undefined, "verify-sizes": undefined, encode: undefined, optimize: undefined };
 * const fields = imageConditioning(
 *   { id: "00017", split: "train", image: { ...none, preprocess }, flipped: null },
 *   { "00017": { gender: "female" } },
 * );
 * assert.equal(fields.bucket, "256x256");
 * assert.deepEqual(fields.original_size, [1024, 768]);
 * assert.deepEqual(fields.labels, { gender: "female" });
 * ```
 */
export function imageConditioning(
  image: ImageStages,
  labels: Readonly<Record<string, ImageLabels>>,
): ImageConditioning {
  const meta = image.image.preprocess?.out.meta as (Conditioning & { bucket: string }) | undefined;
  const out: ImageConditioning = {
    bucket: meta?.bucket ?? null,
    original_size: meta?.original_size,
    crop_coords_top_left: meta?.crop_coords_top_left,
    crop_box: meta?.crop_box,
    target_size: meta?.target_size,
    labels: labels[image.id] ?? {},
  };
  if (image.flipped) {
    const f = image.flipped.preprocess?.out.meta as Conditioning | undefined;
    out.flipped = {
      id: flippedId(image.id),
      crop_coords_top_left: f?.crop_coords_top_left ?? null,
      crop_box: f?.crop_box ?? null,
      keys: stageKeys(image.flipped),
    };
  }
  return out;
}

/**
 * The action key of every stage that made an item, by stage (null where it did not succeed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const entry = { id: "a", out: { objects: {}, meta: null }, key: "k".repeat(64), ms: 1 };
 * const keys = stageKeys({
 *   "fetch-images": entry, "verify-sizes": entry, preprocess: entry, encode: entry,
 *   optimize: undefined,
 * });
 * assert.equal(keys.encode, "k".repeat(64));
 * assert.equal(keys.optimize, null);
 * ```
 */
export function stageKeys(stages: ItemStages): Record<string, string | null> {
  return Object.fromEntries(PROVENANCE_STAGES.map((t) => [t, stages[t]?.key ?? null]));
}

/**
 * What `manifest.json` says about each image beyond its provenance keys: its bucket, its
 * conditioning (SDXL's original size, crop offset, crop box, target size), its labels and, with
 * flips, its flipped item. The manifest's schema version lives here with the fields it names.
 *
 * @module
 */
import type { Output } from "../store/records.ts";
import type { Conditioning } from "../image/preprocess.ts";
import { flippedId } from "../image/flipped_ids.ts";
import type { ImageLabels } from "../dataset/image_labels.ts";

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
 * An image's bucket, conditioning, labels and flipped item for `manifest.json`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const preprocessed = new Map([["00017", {
 *   objects: {},
 *   meta: {
 *     bucket: "256x256", original_size: [1024, 768], crop_coords_top_left: [0, 32],
 *     crop_box: [0, 128, 768, 896], target_size: [256, 256],
 *   },
 * }]]);
 * const fields = imageConditioning("00017", {
 *   preprocessed,
 *   labels: { "00017": { gender: "female" } },
 *   flipKeys: null,
 * });
 * assert.equal(fields.bucket, "256x256");
 * assert.deepEqual(fields.original_size, [1024, 768]);
 * assert.deepEqual(fields.labels, { gender: "female" });
 * ```
 */
export function imageConditioning(
  id: string,
  { preprocessed, labels, flipKeys }: {
    preprocessed: ReadonlyMap<string, Output>;
    labels: Readonly<Record<string, ImageLabels>>;
    /** Action keys of the flipped item by stage, or null without flips. */
    flipKeys: ((item: string) => Record<string, string | null>) | null;
  },
): ImageConditioning {
  const meta = preprocessed.get(id)?.meta as (Conditioning & { bucket: string }) | undefined;
  const out: ImageConditioning = {
    bucket: meta?.bucket ?? null,
    original_size: meta?.original_size,
    crop_coords_top_left: meta?.crop_coords_top_left,
    crop_box: meta?.crop_box,
    target_size: meta?.target_size,
    labels: labels[id] ?? {},
  };
  if (flipKeys) {
    const flipped = flippedId(id);
    const f = preprocessed.get(flipped)?.meta as Conditioning | undefined;
    out.flipped = {
      id: flipped,
      crop_coords_top_left: f?.crop_coords_top_left ?? null,
      crop_box: f?.crop_box ?? null,
      keys: flipKeys(flipped),
    };
  }
  return out;
}

/**
 * How many images each bucket holds, by bucket name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(bucketHistogram(["320x192", "256x256", "320x192"]), { "256x256": 1, "320x192": 2 });
 * ```
 */
export function bucketHistogram(buckets: Iterable<string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const b of buckets) counts[b] = (counts[b] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a < b ? -1 : 1));
}

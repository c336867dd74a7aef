/**
 * The labels packaged with each image: its category (FFHQ's training/validation, a folder's
 * sub-folder) and, when the dataset has a labels file, every column of its row (FFHQ-Aging: age
 * group, gender, glasses, head pose, eye occlusion, with confidences); for a class-folder
 * dataset its class index (`class`, an integer); for tar shards and Parquet tables the captions
 * and other metadata, which travel beside the labels to the index and manifest.
 *
 * @module
 */
import { type FaceLabel, LABEL_FIELDS, labelRowId } from "./labels.ts";

/** One image's labels: text or numbers, `null` where the labels file says none was found. */
export type ImageLabels = Record<string, string | number | null>;

/** The `labels` object label-split stores: the field names, then each image's values. */
export interface LabelsObject {
  /** Field names in a fixed order, the same for every image. */
  fields: string[];
  /** Labels per image id. */
  images: Record<string, ImageLabels>;
  /** Fields whose values are integers (stored as int64): `class`. */
  integer_fields?: string[];
  /** Class name → class index, for a class-folder dataset. */
  class_to_idx?: Record<string, number>;
  /** Classes that some splits lack, with those splits (noted in the report and manifest). */
  classes_missing?: { class: string; absent: string[] }[];
  /** Caption per image id, for the images that have one. */
  captions?: Record<string, string>;
  /** Other metadata per image id, for the images that have some. */
  meta?: Record<string, { [key: string]: unknown }>;
}

/** What {@link imageLabels} reads of an item. */
export interface LabelledItem {
  id: string;
  category: string;
  class_name?: string;
  caption?: string;
  meta?: { [key: string]: unknown };
}

/**
 * Every image's labels: the category of each item and the matching labels row, if any; with
 * `classToIdx`, the class index of each item's class as `class`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const labels = imageLabels([{ id: "00017", category: "training" }], null);
 * assert.deepEqual(labels, { fields: ["category"], images: { "00017": { category: "training" } } });
 * const classes = imageLabels(
 *   [{ id: "train/dog/1", category: "train", class_name: "dog", caption: "a dog" }],
 *   null,
 *   { cat: 0, dog: 1 },
 * );
 * assert.deepEqual(classes.images["train/dog/1"], { category: "train", class: 1 });
 * assert.deepEqual(classes.captions, { "train/dog/1": "a dog" });
 * ```
 */
export function imageLabels(
  items: readonly LabelledItem[],
  rows: readonly FaceLabel[] | null,
  classToIdx: Record<string, number> | null = null,
): LabelsObject {
  const rowFields = rows ? [...LABEL_FIELDS] as string[] : [];
  const fields = ["category", ...(classToIdx ? ["class"] : []), ...rowFields];
  const byId = new Map((rows ?? []).map((row) => [labelRowId(row.id), row]));
  const images: Record<string, ImageLabels> = {};
  const captions: Record<string, string> = {};
  const meta: Record<string, { [key: string]: unknown }> = {};
  for (const item of items) {
    const labels: ImageLabels = { category: item.category };
    if (classToIdx) {
      labels.class = item.class_name === undefined ? null : classToIdx[item.class_name];
    }
    const row = byId.get(labelRowId(item.id));
    for (const field of rowFields) {
      labels[field] = row ? row[field as (typeof LABEL_FIELDS)[number]] : null;
    }
    images[item.id] = labels;
    if (item.caption !== undefined) captions[item.id] = item.caption;
    if (item.meta !== undefined) meta[item.id] = item.meta;
  }
  const out: LabelsObject = { fields, images };
  if (classToIdx) Object.assign(out, { integer_fields: ["class"], class_to_idx: classToIdx });
  if (Object.keys(captions).length > 0) out.captions = captions;
  if (Object.keys(meta).length > 0) out.meta = meta;
  return out;
}

/**
 * The labels packaged with each image: its category (FFHQ's training/validation, a folder's
 * sub-folder) and, when the dataset has a labels file, every column of its row (FFHQ-Aging: age
 * group, gender, glasses, head pose, eye occlusion, with confidences).
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
}

/**
 * Every image's labels: the category of each item and the matching labels row, if any.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const labels = imageLabels([{ id: "00017", category: "training" }], null);
 * assert.deepEqual(labels, { fields: ["category"], images: { "00017": { category: "training" } } });
 * ```
 */
export function imageLabels(
  items: readonly { id: string; category: string }[],
  rows: readonly FaceLabel[] | null,
): LabelsObject {
  const fields = rows ? ["category", ...LABEL_FIELDS] : ["category"];
  const byId = new Map((rows ?? []).map((row) => [labelRowId(row.id), row]));
  const images: Record<string, ImageLabels> = {};
  for (const item of items) {
    const labels: ImageLabels = { category: item.category };
    const row = byId.get(labelRowId(item.id));
    for (const field of fields.slice(1)) {
      labels[field] = row ? row[field as (typeof LABEL_FIELDS)[number]] : null;
    }
    images[item.id] = labels;
  }
  return { fields, images };
}

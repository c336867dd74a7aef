/**
 * The labels packaged with each image: its category (FFHQ's training/validation, a folder's
 * sub-folder) and, when the dataset has a labels file, every column of its row (FFHQ-Aging: age
 * group, gender, glasses, head pose, eye occlusion, with confidences).
 *
 * @module
 */
import type { FaceLabel } from "./labels.ts";

/** One image's labels: text or numbers, `null` where the labels file says none was found. */
export type ImageLabels = Record<string, string | number | null>;

/** The `labels` object label-split stores: the field names, then each image's values. */
export interface LabelsObject {
  /** Field names in a fixed order, the same for every image. */
  fields: string[];
  /** Labels per image id. */
  images: Record<string, ImageLabels>;
}

/** Numeric ids match without their leading zeros ("00017" is row 17), as label-split joins. */
function joinId(id: string): string {
  return /^\d+$/.test(id) ? String(Number(id)) : id;
}

/** The columns of a labels row that are labels (the row's id and line number are not). */
const FACE_FIELDS = [
  "age_group",
  "age_group_confidence",
  "gender",
  "gender_confidence",
  "head_pitch",
  "head_roll",
  "head_yaw",
  "left_eye_occluded",
  "right_eye_occluded",
  "glasses",
] as const;

/**
 * Every image's labels: the category of each item and the matching labels row, if any.
 *
 * @example
 * ```ts
 * const labels = imageLabels([{ id: "00017", category: "training" }], null);
 * // { fields: ["category"], images: { "00017": { category: "training" } } }
 * ```
 */
export function imageLabels(
  items: readonly { id: string; category: string }[],
  rows: readonly FaceLabel[] | null,
): LabelsObject {
  const fields = rows ? ["category", ...FACE_FIELDS] : ["category"];
  const byId = new Map((rows ?? []).map((row) => [joinId(row.id), row]));
  const images: Record<string, ImageLabels> = {};
  for (const item of items) {
    const labels: ImageLabels = { category: item.category };
    const row = byId.get(joinId(item.id));
    for (const field of fields.slice(1)) {
      labels[field] = row ? row[field as (typeof FACE_FIELDS)[number]] : null;
    }
    images[item.id] = labels;
  }
  return { fields, images };
}

/**
 * Joins labels with images on the image id and cuts the dataset into splits (by gender, age
 * group, category, …), with confidence thresholds and filters, and refuses to go on when labels
 * and images disagree by more than the user allows.
 *
 * @module
 */

import type { DatasetItem } from "./item_index.ts";
import { type FaceLabel, labelRowId } from "./labels.ts";

/** Fields a dataset can be split by. `category` comes from the source, the others from labels. */
export type SplitField = "category" | "gender" | "age_group" | "glasses";

const SPLIT_FIELDS: readonly SplitField[] = ["category", "gender", "age_group", "glasses"];

/** Filters on label values; an image that fails one is left out (and counted). */
export interface LabelFilters {
  /** Allowed `glasses` values, e.g. `["NoGlasses"]`. Default: all. */
  glasses?: string[];
  /** Largest |head_yaw| in degrees. */
  maxAbsYaw?: number;
  /** Largest |head_pitch| in degrees. */
  maxAbsPitch?: number;
  /** Largest |head_roll| in degrees. */
  maxAbsRoll?: number;
  /** Largest left/right eye occlusion value. */
  maxEyeOccluded?: number;
}

/** Options of {@link splitDataset}. */
export interface SplitOptions {
  items: readonly DatasetItem[];
  /** The labels; `null`/absent for sources without labels (splits then come from the category). */
  labels?: readonly FaceLabel[] | null;
  /** Fields whose value combination names a split. Default `["category"]`. */
  splitBy?: SplitField[];
  /** Minimum confidence per labelled field (`age_group`, `gender`); lower rows are left out. */
  minConfidence?: Partial<Record<"age_group" | "gender", number>>;
  filters?: LabelFilters;
  /** Images without a label plus labels without an image allowed before failing. Default 0. */
  maxMissing?: number;
  /** Name of the labels file, for messages. Default "labels". */
  labelsFile?: string;
}

/** One split. */
export interface Split {
  /** Field values joined with "_" (`female_training`). */
  name: string;
  /** The field values of this split. */
  key: Partial<Record<SplitField, string>>;
  /** Item ids, in item order. */
  ids: string[];
  /** One relative image path per item (the lines of `manifest.txt`). */
  manifest: string[];
}

/** Counts that say how the join went. */
export interface SplitSummary {
  items: number;
  labels: number;
  /** Items per split name. */
  perSplit: Record<string, number>;
  imagesWithoutLabel: { count: number; first: string[] };
  labelsWithoutImage: { count: number; first: string[] };
  /** Images left out by confidence thresholds or filters, per reason. */
  leftOut: Record<string, number>;
}

/** The splits and their summary. */
export interface SplitResult {
  splits: Split[];
  summary: SplitSummary;
}

/** Raised for an impossible split request or labels that do not match the images. */
export class SplitError extends Error {
  override readonly name = "SplitError";
}

const FIRST = 10;

/**
 * Joins `labels` with `items` and builds the splits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const item = (id: string, category: string) => ({
 *   id, path: `images/${id}.png`, category, url: null, size: null, md5: null,
 *   pixel_size: null, pixel_md5: null,
 * });
 * const { splits, summary } = splitDataset({
 *   items: [item("00017", "training"), item("00018", "validation"), item("00019", "training")],
 * });
 * assert.deepEqual(splits.map((s) => [s.name, s.ids]), [
 *   ["training", ["00017", "00019"]],
 *   ["validation", ["00018"]],
 * ]);
 * assert.equal(manifestText(splits[1]), "images/00018.png\n");
 * assert.deepEqual(summary.perSplit, { training: 2, validation: 1 });
 * ```
 */
export function splitDataset(options: SplitOptions): SplitResult {
  const { items, labels = null, splitBy = ["category"] } = options;
  checkRequest(options);
  const join = joinLabels(options);
  const leftOut: Record<string, number> = {};
  const drop = (reason: string) => (leftOut[reason] = (leftOut[reason] ?? 0) + 1);
  const splits = new Map<string, Split>();
  for (const item of items) {
    const label = join.byId.get(labelRowId(item.id));
    if (labels && !label) {
      drop("no label");
      continue;
    }
    const reason = label && rejectReason(label, options.minConfidence ?? {}, options.filters ?? {});
    if (reason) {
      drop(reason);
      continue;
    }
    const key: Partial<Record<SplitField, string>> = {};
    for (const field of splitBy) {
      const v = field === "category" ? item.category : label![field];
      if (v === null || v === undefined) break;
      key[field] = v;
    }
    if (Object.keys(key).length !== splitBy.length) {
      drop("no face found");
      continue;
    }
    const name = splitBy.map((f) => key[f]).join("_");
    let split = splits.get(name);
    if (!split) {
      split = { name, key, ids: [], manifest: [] };
      splits.set(name, split);
    }
    split.ids.push(item.id);
    split.manifest.push(item.path);
  }
  const sorted = [...splits.values()].sort((a, b) => a.name < b.name ? -1 : 1);
  return {
    splits: sorted,
    summary: {
      items: items.length,
      labels: labels?.length ?? 0,
      perSplit: Object.fromEntries(sorted.map((s) => [s.name, s.ids.length])),
      imagesWithoutLabel: { count: join.without.length, first: join.without.slice(0, FIRST) },
      labelsWithoutImage: {
        count: join.orphans.length,
        first: join.orphans.slice(0, FIRST).map((l) => l.id),
      },
      leftOut,
    },
  };
}

/** Refuses a split request that cannot be met: unknown fields, or fields that need labels. */
function checkRequest(
  { labels = null, splitBy = ["category"], minConfidence = {}, filters = {} }: SplitOptions,
): void {
  if (splitBy.length === 0) throw new SplitError("split_by must name at least one field");
  for (const field of splitBy) {
    if (!SPLIT_FIELDS.includes(field)) {
      throw new SplitError(
        `split_by field ${JSON.stringify(field)} is unknown; expected one of ${
          SPLIT_FIELDS.join(", ")
        }`,
      );
    }
    if (!labels && field !== "category") {
      throw new SplitError(
        `split_by field "${field}" needs labels; without labels only "category" is available`,
      );
    }
  }
  if (!labels && (Object.keys(minConfidence).length > 0 || Object.keys(filters).length > 0)) {
    throw new SplitError("min_confidence and filters need labels, and none were given");
  }
}

/** The labels by row id, and the images and labels that have no partner. */
interface LabelJoin {
  byId: Map<string, FaceLabel>;
  /** Ids of images without a label. */
  without: string[];
  /** Labels without an image. */
  orphans: FaceLabel[];
}

/** Joins labels and images; more unmatched than `maxMissing` fails with the first of each. */
function joinLabels(
  { items, labels = null, maxMissing = 0, labelsFile = "labels" }: SplitOptions,
): LabelJoin {
  const byId = new Map<string, FaceLabel>();
  for (const label of labels ?? []) byId.set(labelRowId(label.id), label);
  const without: string[] = [];
  const orphans: FaceLabel[] = [];
  if (!labels) return { byId, without, orphans };
  const itemIds = new Set(items.map((i) => labelRowId(i.id)));
  for (const item of items) if (!byId.has(labelRowId(item.id))) without.push(item.id);
  for (const label of labels) if (!itemIds.has(labelRowId(label.id))) orphans.push(label);
  if (without.length + orphans.length > maxMissing) {
    throw new SplitError(
      `labels do not match the images: ${without.length} image(s) without a label` +
        (without.length ? ` (first: ${without.slice(0, FIRST).join(", ")})` : "") +
        `, ${orphans.length} label(s) in ${labelsFile} without an image` +
        (orphans.length
          ? ` (first: ${
            orphans.slice(0, FIRST).map((l) => `${l.id} at line ${l.line}`).join(", ")
          })`
          : "") +
        `; labels.max_missing is ${maxMissing}`,
    );
  }
  return { byId, without, orphans };
}

function rejectReason(
  label: FaceLabel,
  minConfidence: Partial<Record<"age_group" | "gender", number>>,
  filters: LabelFilters,
): string | null {
  for (const [field, min] of Object.entries(minConfidence)) {
    const conf = field === "age_group"
      ? label.age_group_confidence
      : field === "gender"
      ? label.gender_confidence
      : undefined;
    if (conf === undefined) {
      throw new SplitError(
        `min_confidence field ${JSON.stringify(field)} is unknown; expected age_group or gender`,
      );
    }
    if (conf < min!) return `${field} confidence below ${min}`;
  }
  if (filters.glasses && !filters.glasses.includes(label.glasses)) return "glasses";
  if (filters.maxAbsYaw !== undefined && Math.abs(label.head_yaw) > filters.maxAbsYaw) {
    return "head yaw";
  }
  if (filters.maxAbsPitch !== undefined && Math.abs(label.head_pitch) > filters.maxAbsPitch) {
    return "head pitch";
  }
  if (filters.maxAbsRoll !== undefined && Math.abs(label.head_roll) > filters.maxAbsRoll) {
    return "head roll";
  }
  if (
    filters.maxEyeOccluded !== undefined &&
    Math.max(label.left_eye_occluded, label.right_eye_occluded) > filters.maxEyeOccluded
  ) return "eye occluded";
  return null;
}

/** The `manifest.txt` text of a split: one relative image path per line. */
export function manifestText(split: Split): string {
  return split.manifest.length ? split.manifest.join("\n") + "\n" : "";
}

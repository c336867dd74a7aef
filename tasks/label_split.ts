/**
 * label-split: the verified images joined with their labels (the FFHQ-Aging CSV, parsed
 * strictly) and divided into splits by `labels.split_by`, after `labels.min_confidence` and
 * `labels.filters`. More images without a label plus labels without an image than
 * `labels.max_missing` fail the task with both counts and the first ids. Without labels the
 * splits are the source's own (FFHQ's training/validation, a folder's sub-folders, the
 * `dataset.splits` of class folders, tar shards and Parquet files). Class folders give each
 * image its class index, from the whole listing (so `--limit` or a failed image never renumbers
 * the classes); a class missing from a split is logged and noted in the splits' summary.
 *
 * Reads: the index of `fetch-json`, the images `verify-sizes` accepted, the labels file.
 * Produces: `splits` (JSON: ids per split, image paths, summary) and `labels` (JSON: each
 * image's category and labels row).
 *
 * @module
 */
import { aggregate } from "../lib/dag/task.ts";
import { decodeItemIndex } from "../lib/dataset/item_index.ts";
import { labelRowId, parseLabelsCsv } from "../lib/dataset/labels.ts";
import { imageLabels } from "../lib/dataset/image_labels.ts";
import { classesMissing, classToIdx } from "../lib/dataset/imagefolder_spec.ts";
import { splitDataset, type SplitField, type SplitSummary } from "../lib/dataset/splits.ts";
import type { Config } from "../config/schema.ts";

/** The `splits` object: which images each split holds. */
export interface SplitsObject {
  splits: Record<string, string[]>;
  /** Relative image path per id (`images1024x1024/00000/00017.png`). */
  paths: Record<string, string>;
  summary: SplitSummary;
}

export default aggregate<Config>({
  name: "label-split",
  deps: ["verify-sizes", "fetch-json"],
  config: ["labels"],
  reads: ["download.stall_s"],
  version: "2",
  source: import.meta.url,
  describe: "join labels and split the dataset",
  files: ({ labels }) => labels ? { labels: "labels.source" } : {},
  async run(ctx, up) {
    const index = decodeItemIndex(await ctx.store.get(up.aggregate("fetch-json").objects.index));
    const verified = up.items("verify-sizes");
    const items = index.items.filter((item) => verified.has(item.id));
    const labelsConfig = ctx.config.labels;
    let labels = null;
    let labelsFile: string | undefined;
    if (labelsConfig) {
      const file = ctx.files.labels;
      labelsFile = labelsConfig.source.path ?? labelsConfig.source.url;
      // Labels of images the spec lists but this run does not hold (failed downloads, --limit)
      // are neither orphans nor matches.
      const inSpec = new Set(index.items.map((i) => labelRowId(i.id)));
      const held = new Set(items.map((i) => labelRowId(i.id)));
      const parsed = await parseLabelsCsv(await Deno.readFile(file.path), labelsFile!);
      labels = parsed.filter((l) => !inSpec.has(l.id) || held.has(l.id));
    }
    const result = splitDataset({
      items,
      labels,
      splitBy: (labelsConfig?.split_by ?? ["category"]) as SplitField[],
      minConfidence: labelsConfig?.min_confidence,
      filters: labelsConfig
        ? {
          glasses: labelsConfig.filters.glasses,
          maxAbsYaw: labelsConfig.filters.max_abs_yaw,
          maxAbsPitch: labelsConfig.filters.max_abs_pitch,
        }
        : {},
      maxMissing: labelsConfig?.max_missing ?? 0,
      labelsFile,
    });
    const splits: SplitsObject = {
      splits: Object.fromEntries(result.splits.map((s) => [s.name, s.ids])),
      paths: Object.fromEntries(items.map((i) => [i.id, i.path])),
      summary: result.summary,
    };
    for (const [name, n] of Object.entries(result.summary.perSplit)) {
      ctx.log(`split ${name}: ${n} images`);
    }
    const digest = await ctx.store.putJson(splits);
    // Each image's labels travel to the dataset files with it.
    const named = index.items.flatMap((i) => i.class_name === undefined ? [] : [i.class_name]);
    const classes = named.length > 0 ? classToIdx(named) : null;
    const labelled = imageLabels(items, labels, classes);
    const missing = classesMissing(index.items);
    for (const m of missing) {
      ctx.log(`class ${m.class} has no image in split ${m.absent.join(", ")}`);
    }
    if (missing.length > 0) labelled.classes_missing = missing;
    const labelsDigest = await ctx.store.putJson(labelled);
    return { objects: { splits: digest, labels: labelsDigest }, meta: result.summary.perSplit };
  },
});

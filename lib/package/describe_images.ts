/**
 * The dataset's description, image by image, in two passes over the upstream outputs: a census
 * of the optimized images (what the notes on the inputs, the counts per split and the buckets
 * are made of — `manifest.json` states them before its images), then every image of every split
 * as it comes, for its entry in `manifest.json`, written into the store as it goes. What stays
 * is the ids of the rows, per split and bucket (see dataset_rows.ts): no stage's outputs, keys
 * or metadata of every item.
 *
 * @module
 */
import type { Reconciliation } from "../dataset/reconciliation.ts";
import type { ReportNotes } from "../report/html.ts";
import type { ObjectStore } from "../store/objects.ts";
import { censusImages, datasetNotes, type NoteOptions } from "./dataset_notes.ts";
import { type RowIds, rowIds } from "./dataset_rows.ts";
import { type ManifestHeader, ManifestJsonWriter } from "./manifest_json.ts";
import type { RowFacts } from "./rows.ts";
import { StoredText } from "./stored_text.ts";
import { imageStages, type StageOutputs } from "./upstream_images.ts";

/** What {@link describeImages} reads. */
export interface DescribeSources {
  /** Image ids per split (label-split's `splits`). */
  splits: Readonly<Record<string, readonly string[]>>;
  /** Paths, labels, captions and metadata per image; flips; encode-only. */
  facts: RowFacts;
  /** The recorded items of every stage. */
  outputs: StageOutputs;
  /** What counts as enlarged, what is left out; the folder listing. */
  notes: NoteOptions;
  /** Classes some splits lack (label-split found them; the notes carry them). */
  classesMissing?: ReportNotes["classes_missing"];
  /** What manifest.json says before its images, besides the counts, buckets and notes. */
  header: Omit<ManifestHeader, "buckets" | "counts" | "notes">;
  /** What manifest.json says after its images. */
  reconciliation: () => Promise<Reconciliation | null>;
  limit: number | null;
  signal?: AbortSignal;
}

/** What {@link describeImages} found and stored. */
export interface ImageDescriptions {
  /** The ids of the rows the latent files hold, per split and bucket, in the dataset's order. */
  ids: RowIds;
  /** Images in the dataset per split. */
  counts: Record<string, number>;
  notes: ReportNotes;
  reconciliation: Reconciliation | null;
  /** Digest of the stored `manifest.json`. */
  manifest: string;
}

/**
 * Stores `manifest.json` and says which images are the dataset's rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ItemOutputs } from "../dag/task.ts";
 * import { ObjectStore } from "../store/objects.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const none: ItemOutputs = {
 *   size: 0, has: () => false, get: () => Promise.resolve(undefined),
 *   async *[Symbol.asyncIterator]() {},
 * };
 * const described = await describeImages(store, {
 *   splits: { train: ["00017"] },
 *   facts: { paths: { "00017": "a.png" }, labels: {}, flip: false },
 *   outputs: {
 *     "fetch-images": none, "verify-sizes": none, preprocess: none, encode: none, optimize: none,
 *   },
 *   notes: { size: 256, crop: "center", exclude: [] },
 *   header: { toolVersion: "0.1.0", config: {}, layout: "shards", models: {}, failures: [] },
 *   reconciliation: () => Promise.resolve(null),
 *   limit: null,
 * });
 * assert.deepEqual(described.counts, { train: 0 });
 * assert.deepEqual([...described.ids.get("train")!], []);
 * const manifest = JSON.parse(new TextDecoder().decode(await store.get(described.manifest)));
 * assert.equal(manifest.images["00017"].path, "a.png");
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function describeImages(
  store: ObjectStore,
  sources: DescribeSources,
): Promise<ImageDescriptions> {
  const { splits, facts, outputs: o } = sources;
  const census = await censusImages({
    fetched: o["fetch-images"],
    preprocessed: o.preprocess,
    encoded: o.encode,
    optimized: o.optimize,
  }, { splits, flip: facts.flip });
  const notes = await datasetNotes(store, census, sources.notes);
  if (sources.classesMissing) notes.classes_missing = sources.classesMissing;
  const ids = rowIds(census, new Set(notes.excluded.map((e) => e.id)), Object.keys(splits));
  const { counts, buckets } = rowCounts(ids);

  const text = await StoredText.open(store, "manifest-json");
  try {
    const manifest = await ManifestJsonWriter.open(text, {
      ...sources.header,
      buckets,
      counts,
      notes,
    });
    for await (const image of imageStages(o, { splits, flip: facts.flip })) {
      sources.signal?.throwIfAborted();
      await manifest.image(image, facts);
    }
    const reconciliation = await sources.reconciliation();
    await manifest.finish({ reconciliation, limit: sources.limit });
    return { ids, counts, notes, reconciliation, manifest: await text.finish() };
  } catch (e) {
    // The unfinished manifest's temp file is no one's; the error is the caller's.
    await text.discard();
    throw e;
  }
}

/** Images per split, and per bucket (by name), of the rows. */
function rowCounts(ids: RowIds) {
  const counts: Record<string, number> = {};
  const buckets: Record<string, number> = {};
  for (const [split, groups] of ids) {
    counts[split] = 0;
    for (const [bucket, group] of groups) {
      counts[split] += group.length;
      buckets[bucket] = (buckets[bucket] ?? 0) + group.length;
    }
  }
  const sorted = Object.entries(buckets).sort(([a], [b]) => a < b ? -1 : 1);
  return { counts, buckets: Object.fromEntries(sorted) };
}

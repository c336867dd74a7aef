/**
 * Each split's text files — `manifest.txt` (its images' source paths) and, when the latents were
 * optimized, `metrics.csv` — written into the store line by line as the split's rows come, in
 * the dataset's order.
 *
 * @module
 */
import type { ObjectStore } from "../store/objects.ts";
import { METRICS_CSV_HEADER, metricsLines } from "./metrics_csv.ts";
import type { PackageRow } from "./rows.ts";
import { manifestLine } from "./split_manifest.ts";
import { StoredText } from "./stored_text.ts";

/**
 * Stores one split's `manifest.txt` (and `metrics.csv` when `metrics`); returns dataset path →
 * digest.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 * import type { PackageRow } from "./rows.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const rows = [{ id: "a", path: "images/a.png", image: { metrics: null }, flipped: null }];
 * const files = await writeSplitTexts(store, "train", rows as unknown as PackageRow[], {
 *   metrics: false,
 * });
 * assert.deepEqual(Object.keys(files), ["train/manifest.txt"]);
 * const text = new TextDecoder().decode(await store.get(files["train/manifest.txt"]));
 * assert.equal(text, "images/a.png\n");
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function writeSplitTexts(
  store: ObjectStore,
  split: string,
  rows: Iterable<PackageRow> | AsyncIterable<PackageRow>,
  { metrics }: { metrics: boolean },
): Promise<Record<string, string>> {
  const manifest = await StoredText.open(store, "manifest-txt");
  const csv = metrics ? await StoredText.open(store, "metrics-csv") : null;
  try {
    await csv?.write(METRICS_CSV_HEADER);
    for await (const row of rows) {
      await manifest.write(manifestLine(row.path));
      await csv?.write(metricsLines(row));
    }
    const files: Record<string, string> = {};
    files[`${split}/manifest.txt`] = await manifest.finish();
    if (csv) files[`${split}/metrics.csv`] = await csv.finish();
    return files;
  } catch (e) {
    // The temp files of a split that was not written are no one's; the error is the caller's.
    await manifest.discard();
    await csv?.discard();
    throw e;
  }
}

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
 * One split's text files being written, a row at a time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 * import type { PackageRow } from "./rows.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const texts = await SplitTexts.open(store, "train", { metrics: false });
 * await texts.add({ id: "a", path: "images/a.png", image: { metrics: null }, flipped: null } as unknown as PackageRow);
 * const files = await texts.finish();
 * assert.deepEqual(Object.keys(files), ["train/manifest.txt"]);
 * assert.equal(new TextDecoder().decode(await store.get(files["train/manifest.txt"])), "images/a.png\n");
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export class SplitTexts {
  readonly #split: string;
  readonly #manifest: StoredText;
  readonly #csv: StoredText | null;

  private constructor(split: string, manifest: StoredText, csv: StoredText | null) {
    this.#split = split;
    this.#manifest = manifest;
    this.#csv = csv;
  }

  /** Opens `manifest.txt` (and `metrics.csv`, with its header, when `metrics`). */
  static async open(
    store: ObjectStore,
    split: string,
    { metrics }: { metrics: boolean },
  ): Promise<SplitTexts> {
    const manifest = await StoredText.open(store, "manifest-txt");
    const csv = metrics ? await StoredText.open(store, "metrics-csv") : null;
    await csv?.write(METRICS_CSV_HEADER);
    return new SplitTexts(split, manifest, csv);
  }

  /** Appends the next row's lines. */
  async add(row: PackageRow): Promise<void> {
    await this.#manifest.write(manifestLine(row.path));
    await this.#csv?.write(metricsLines(row));
  }

  /** Stores the files; returns dataset path → digest. */
  async finish(): Promise<Record<string, string>> {
    const files: Record<string, string> = {};
    files[`${this.#split}/manifest.txt`] = await this.#manifest.finish();
    if (this.#csv) files[`${this.#split}/metrics.csv`] = await this.#csv.finish();
    return files;
  }

  /** Removes the temp files of texts that will not be finished. */
  async discard(): Promise<void> {
    await this.#manifest.discard();
    await this.#csv?.discard();
  }
}

/**
 * Stores one split's `manifest.txt` (and `metrics.csv` when `metrics`) from its rows; returns
 * dataset path → digest.
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
 *   metrics: true,
 * });
 * assert.deepEqual(Object.keys(files), ["train/manifest.txt", "train/metrics.csv"]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function writeSplitTexts(
  store: ObjectStore,
  split: string,
  rows: Iterable<PackageRow> | AsyncIterable<PackageRow>,
  options: { metrics: boolean },
): Promise<Record<string, string>> {
  const texts = await SplitTexts.open(store, split, options);
  try {
    for await (const row of rows) await texts.add(row);
    return await texts.finish();
  } catch (e) {
    // The temp files of a split that was not written are no one's; the error is the caller's.
    await texts.discard();
    throw e;
  }
}

/**
 * What the dataset says about its inputs: the files the folder listing skipped, the images
 * preprocessing enlarged more than 2× and the byte-identical ones — in the log, the report and
 * `manifest.json` — and which of them `package.exclude` leaves out of the dataset files; and the
 * census of the optimized images they are found in.
 *
 * @module
 */
import type { ItemOutputs } from "../dag/task.ts";
import { compareIds, orderedReader } from "../dag/item_order.ts";
import { type ExcludeKind, inputNotes, type NotedImage } from "../dataset/input_notes.ts";
import { flippedId } from "../image/flipped_ids.ts";
import type { ReportNotes } from "../report/html.ts";
import type { ObjectStore } from "../store/objects.ts";

/** What is known of one optimized image before the dataset's files are written. */
export interface CensusImage extends NotedImage {
  split: string;
  /** Its bucket (from preprocess), null when unknown. */
  bucket: string | null;
  /** Whether every item it needs (the image, and with flips its flipped item) has latents. */
  complete: boolean;
}

/** The recorded outputs a census reads. */
export interface CensusOutputs {
  fetched: ItemOutputs;
  preprocessed: ItemOutputs;
  encoded: ItemOutputs;
  optimized: ItemOutputs;
}

/**
 * One pass over the images of every split that were optimized: each one's source MD5, sizes,
 * bucket and whether it can be packaged — what the notes, the counts and the buckets of the
 * dataset are made of, before any file is written. The list is in id order (as `<` sorts),
 * each image once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ItemEntry, ItemOutputs } from "../dag/task.ts";
 * import type { Json } from "../store/canonical.ts";
 *
 * const outputs = (meta: Record<string, Json>): ItemOutputs => {
 *   const entries = new Map(Object.entries(meta).map(([id, m]): [string, ItemEntry] => [id, { id, out: { objects: {}, meta: m }, key: "k", ms: 1 }]));
 *   return {
 *     size: entries.size,
 *     has: (id) => entries.has(id),
 *     get: (id) => Promise.resolve(entries.get(id)),
 *     async *[Symbol.asyncIterator]() { yield* [...entries.values()]; },
 *   };
 * };
 * const census = await censusImages({
 *   fetched: outputs({ a: { md5: "x" }, b: { md5: "y" } }),
 *   preprocessed: outputs({ a: { bucket: "256x256", source_size: [512, 512] }, b: { bucket: "256x256" } }),
 *   encoded: outputs({ a: {}, b: {} }),
 *   optimized: outputs({ a: {} }),
 * }, { splits: { train: ["a", "b"] }, flip: false });
 * assert.deepEqual(census, [{
 *   id: "a", split: "train", md5: "x", sourceSize: [512, 512], targetSize: null, bucket: "256x256",
 *   complete: true,
 * }]);
 * ```
 */
export async function censusImages(
  outputs: CensusOutputs,
  { splits, flip }: { splits: Readonly<Record<string, readonly string[]>>; flip: boolean },
): Promise<CensusImage[]> {
  const { fetched, preprocessed, encoded, optimized } = outputs;
  const has = (item: string) => optimized.has(item) && encoded.has(item) && preprocessed.has(item);
  const seen = new Set<string>();
  const out: CensusImage[] = [];
  for (const [split, ids] of Object.entries(splits)) {
    const md5Of = orderedReader(fetched, (id) => fetched.get(id));
    const preprocessOf = orderedReader(preprocessed, (id) => preprocessed.get(id));
    for (const id of [...ids].sort(compareIds)) {
      if (!optimized.has(id) || seen.has(id)) continue;
      seen.add(id);
      const source = (await md5Of(id))?.out.meta as { md5?: string } | undefined;
      const meta = (await preprocessOf(id))?.out.meta as
        | { bucket?: string; source_size?: [number, number]; target_size?: [number, number] }
        | undefined;
      out.push({
        id,
        split,
        md5: source?.md5 ?? null,
        sourceSize: meta?.source_size ?? null,
        targetSize: meta?.target_size ?? null,
        bucket: meta?.bucket ?? null,
        complete: has(id) && (!flip || has(flippedId(id))),
      });
    }
  }
  return out.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** What {@link datasetNotes} reads besides the census. */
export interface NoteOptions {
  /** The folder listing (fetch-json's `listing` object), when the dataset came from one. */
  listing?: string;
  /** `preprocess.size` and `preprocess.crop`: what counts as enlarged. */
  size: number;
  crop: "center" | "none" | "buckets";
  /** `package.exclude`. */
  exclude: readonly ExcludeKind[];
}

/**
 * The notes on a dataset's inputs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const image = (id: string, md5: string, size: number) => ({
 *   id, split: "train", md5, sourceSize: [size, size] as [number, number], bucket: "256x256",
 *   complete: true,
 * });
 * const notes = await datasetNotes(new ObjectStore(cache), [
 *   image("a", "x", 512), image("b", "x", 512), image("c", "y", 64),
 * ], { size: 256, crop: "center", exclude: ["duplicates"] });
 * assert.deepEqual(notes.duplicates, [["a", "b"]]);
 * assert.deepEqual(notes.upscaled.map((u) => u.id), ["c"]);
 * assert.deepEqual(notes.excluded.map((e) => e.id), ["b"]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function datasetNotes(
  store: ObjectStore,
  census: readonly CensusImage[],
  options: NoteOptions,
): Promise<ReportNotes> {
  const { skipped } = options.listing
    ? await store.getJson<{ skipped: ReportNotes["skipped"] }>(options.listing)
    : { skipped: [] };
  const noted = inputNotes(census, options);
  return { skipped, ...noted };
}

/**
 * The log lines of the notes: upscaled images, groups of byte-identical ones, what is left out
 * (the first 20 of each named).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const lines = notesLog({
 *   skipped: [],
 *   upscaled: [{ id: "icon", width: 10, height: 10, factor: 25.6 }],
 *   duplicates: [],
 *   excluded: [],
 * });
 * assert.deepEqual(lines, ["1 image is upscaled more than 2×: icon 10×10 25.6×"]);
 * ```
 */
export function notesLog(notes: ReportNotes): string[] {
  const names = (list: string[]) =>
    list.slice(0, 20).join(", ") + (list.length > 20 ? `, … (${list.length - 20} more)` : "");
  const lines: string[] = [];
  const n = notes.upscaled.length;
  if (n) {
    lines.push(
      `${n} ${n === 1 ? "image is" : "images are"} upscaled more than 2×: ${
        names(notes.upscaled.map((u) => `${u.id} ${u.width}×${u.height} ${u.factor.toFixed(1)}×`))
      }`,
    );
  }
  const g = notes.duplicates.length;
  if (g) {
    lines.push(
      `${g} ${g === 1 ? "group" : "groups"} of byte-identical images: ${
        names(notes.duplicates.map((d) => d.join(" = ")))
      }`,
    );
  }
  if (notes.excluded.length) {
    lines.push(
      `left out of the dataset (package.exclude): ${
        names(notes.excluded.map((e) => `${e.id} (${e.reason})`))
      }`,
    );
  }
  return lines;
}

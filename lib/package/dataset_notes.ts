/**
 * What the dataset says about its inputs: the files the folder listing skipped, the images
 * preprocessing enlarged more than 2× and the byte-identical ones — in the log, the report and
 * `manifest.json` — and which of them `package.exclude` leaves out of the dataset files.
 *
 * @module
 */
import { type ExcludeKind, inputNotes } from "../dataset/input_notes.ts";
import type { ReportNotes } from "../report/html.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { Output } from "../store/records.ts";

/** What {@link datasetNotes} reads. */
export interface NoteSources {
  /** The folder listing (fetch-json's `listing` object), when the dataset came from one. */
  listing?: string;
  /** Image ids per split. */
  splits: Record<string, string[]>;
  /** Outputs of `optimize` (only optimized images are noted), `fetch-images` and `preprocess`. */
  optimized: ReadonlyMap<string, Output>;
  fetched: ReadonlyMap<string, Output>;
  preprocessed: ReadonlyMap<string, Output>;
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
 * const image = (md5: string, size: number) => ({ objects: {}, meta: { md5, source_size: [size, size] } });
 * const notes = await datasetNotes(new ObjectStore(cache), {
 *   splits: { train: ["a", "b", "c"] },
 *   optimized: new Map([["a", image("x", 0)], ["b", image("x", 0)], ["c", image("y", 0)]]),
 *   fetched: new Map([["a", image("x", 512)], ["b", image("x", 512)], ["c", image("y", 64)]]),
 *   preprocessed: new Map([["a", image("x", 512)], ["b", image("x", 512)], ["c", image("y", 64)]]),
 *   size: 256,
 *   crop: "center",
 *   exclude: ["duplicates"],
 * });
 * assert.deepEqual(notes.duplicates, [["a", "b"]]);
 * assert.deepEqual(notes.upscaled.map((u) => u.id), ["c"]);
 * assert.deepEqual(notes.excluded.map((e) => e.id), ["b"]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function datasetNotes(store: ObjectStore, sources: NoteSources): Promise<ReportNotes> {
  const { skipped } = sources.listing
    ? await store.getJson<{ skipped: ReportNotes["skipped"] }>(sources.listing)
    : { skipped: [] };
  const ids = [...new Set(Object.values(sources.splits).flat())]
    .filter((id) => sources.optimized.has(id)).sort();
  const meta = (outputs: ReadonlyMap<string, Output>, id: string) =>
    outputs.get(id)?.meta as
      | { md5?: string; source_size?: [number, number]; target_size?: [number, number] }
      | undefined;
  const noted = inputNotes(
    ids.map((id) => ({
      id,
      md5: meta(sources.fetched, id)?.md5 ?? null,
      sourceSize: meta(sources.preprocessed, id)?.source_size ?? null,
      targetSize: meta(sources.preprocessed, id)?.target_size ?? null,
    })),
    { size: sources.size, crop: sources.crop, exclude: sources.exclude },
  );
  return { skipped, ...noted };
}

/**
 * The image ids of each split without those the notes leave out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const kept = withoutExcluded({ train: ["a", "b"], val: ["c"] }, {
 *   skipped: [], upscaled: [], duplicates: [["a", "b"]], excluded: [{ id: "b", reason: "duplicate of a" }],
 * });
 * assert.deepEqual(kept, { train: ["a"], val: ["c"] });
 * ```
 */
export function withoutExcluded(
  splits: Record<string, string[]>,
  notes: ReportNotes,
): Record<string, string[]> {
  const excluded = new Set(notes.excluded.map((e) => e.id));
  return Object.fromEntries(
    Object.entries(splits).map(([name, ids]) => [name, ids.filter((id) => !excluded.has(id))]),
  );
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

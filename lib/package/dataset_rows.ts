/**
 * The dataset's rows as they are made: split by split (in name order), bucket by bucket (in name
 * order), each bucket's images in id order, each row built from the stages' outputs read beside
 * the split's ids (one pass over the stages per split) and handed on — to the layout, and to
 * whatever else sees every row (the split's text files, the report's tally). Which images are
 * rows, and their buckets, come from the census. No row is held once it has been handed on: the
 * rows of a split's other buckets wait on disk.
 *
 * @module
 */
import { compareIds } from "../dag/item_order.ts";
import type { CensusImage } from "./dataset_notes.ts";
import type { RowGroup, RowSplit } from "./layout.ts";
import { type PackageRow, packageRow, type RowFacts } from "./rows.ts";
import { RowSpill } from "./row_spill.ts";
import { imageStages, type StageOutputs } from "./upstream_images.ts";

/** The stages a row is made of. */
const ROW_STAGES = ["preprocess", "encode", "optimize"] as const;

/** The ids of the dataset's rows: per split, per bucket, in the dataset's order. */
export type RowIds = Map<string, Map<string, string[]>>;

/** Raised when an image the census counted cannot be made into a row. */
export class RowSourceError extends Error {
  override readonly name = "RowSourceError";
}

/**
 * The ids of the rows: the census' complete images less the excluded ones, for every split
 * (a split without images has no buckets).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const image = (id: string, bucket: string, complete = true) => ({
 *   id, split: "train", md5: null, sourceSize: null, bucket, complete,
 * });
 * const ids = rowIds(
 *   [image("b", "320x192"), image("a", "320x192"), image("c", "256x256"), image("d", "256x256", false)],
 *   new Set(["c"]),
 *   ["val", "train"],
 * );
 * assert.deepEqual([...ids].map(([s, b]) => [s, [...b]]), [
 *   ["train", [["320x192", ["a", "b"]]]],
 *   ["val", []],
 * ]);
 * ```
 */
export function rowIds(
  census: readonly CensusImage[],
  excluded: ReadonlySet<string>,
  splits: readonly string[],
): RowIds {
  const groups = new Map<string, Map<string, string[]>>();
  for (const image of census) {
    if (!image.complete || excluded.has(image.id)) continue;
    let split = groups.get(image.split);
    if (!split) groups.set(image.split, split = new Map());
    const ids = split.get(image.bucket!);
    if (ids) ids.push(image.id);
    else split.set(image.bucket!, [image.id]);
  }
  const byName = (a: string, b: string) => a < b ? -1 : a > b ? 1 : 0;
  return new Map(
    [...splits].sort().map((name) => {
      const buckets = [...groups.get(name) ?? []].sort(([a], [b]) => byName(a, b));
      return [name, new Map(buckets.map(([bucket, ids]) => [bucket, ids.sort(compareIds)]))];
    }),
  );
}

/** What sees the rows of one split as they pass, then the split's end. */
export interface SplitWatch {
  row(row: PackageRow): Promise<void>;
  end(): Promise<void>;
}

/** Options of {@linkcode datasetRows}. */
export interface RowOptions {
  /** Called when a split starts; what it returns sees each of the split's rows and its end. */
  watch: (split: string) => Promise<SplitWatch>;
  /** A fresh temp file path (e.g. `ObjectStore.tempPath`), for the rows set aside. */
  tempPath: (hint: string) => string;
}

/**
 * The rows of `ids`, made from the stages' outputs as the consumer reads them. A split of one
 * bucket is read once beside its ids; a split of several is read once too, its rows set aside
 * on disk by bucket (see row_spill.ts), then handed on bucket by bucket.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ItemEntry, ItemOutputs } from "../dag/task.ts";
 * import type { Output } from "../store/records.ts";
 *
 * const entry = (out: Output): ItemEntry => ({ id: "a", out, key: "k", ms: 1 });
 * const one = (e: ItemEntry | undefined): ItemOutputs => ({
 *   size: e ? 1 : 0, has: () => e !== undefined, get: () => Promise.resolve(e),
 *   async *[Symbol.asyncIterator]() { if (e) yield e; },
 * });
 * const latent = entry({ objects: { latent: "l".repeat(64) }, meta: null });
 * const tensor = entry({ objects: { tensor: "t".repeat(64) }, meta: { bucket: "256x256" } });
 * const outputs = {
 *   "fetch-images": one(undefined), "verify-sizes": one(undefined), preprocess: one(tensor),
 *   encode: one(latent), optimize: one(latent),
 * };
 * const seen: string[] = [];
 * const dir = await Deno.makeTempDir();
 * const splits = datasetRows(outputs, new Map([["train", new Map([["256x256", ["a"]]])]]), {
 *   paths: { a: "a.png" }, labels: {}, flip: false, encodeOnly: true,
 * }, {
 *   watch: () => Promise.resolve({
 *     row: (row) => Promise.resolve(void seen.push(row.id)),
 *     end: () => Promise.resolve(void seen.push("end")),
 *   }),
 *   tempPath: (hint) => `${dir}/${hint}`,
 * });
 * for await (const { groups } of splits) {
 *   // The layout reads the rows.
 *   for await (const { rows } of groups) for await (const _ of rows) continue;
 * }
 * assert.deepEqual(seen, ["a", "end"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function* datasetRows(
  outputs: StageOutputs,
  ids: RowIds,
  facts: RowFacts,
  { watch, tempPath }: RowOptions,
): AsyncGenerator<RowSplit> {
  for (const [split, buckets] of ids) {
    const watcher = await watch(split);
    const groups = buckets.size > 1
      ? spilledGroups(outputs, split, buckets, facts, watcher, tempPath)
      : [...buckets].map(([bucket, group]) => ({
        bucket,
        rows: watched(rowsOf(outputs, split, group, facts), watcher),
      }));
    yield { split, groups };
    await watcher.end();
  }
}

/** The buckets of a split of several: one pass, each bucket's rows set aside, then read back. */
async function* spilledGroups(
  outputs: StageOutputs,
  split: string,
  buckets: ReadonlyMap<string, readonly string[]>,
  facts: RowFacts,
  watcher: SplitWatch,
  tempPath: (hint: string) => string,
): AsyncGenerator<RowGroup> {
  const spills = new Map<string, RowSpill>();
  try {
    for (const bucket of buckets.keys()) spills.set(bucket, await RowSpill.open(tempPath("rows")));
    const all = [...buckets.values()].flat().sort(compareIds);
    for await (const row of rowsOf(outputs, split, all, facts)) {
      const spill = spills.get(row.bucket);
      if (!spill) {
        throw new RowSourceError(
          `image ${row.id} (${split}): expected its bucket to be one of ` +
            `${[...buckets.keys()].join(", ")}, found ${row.bucket}`,
        );
      }
      await spill.write(row);
    }
    for (const [bucket, spill] of spills) {
      yield { bucket, rows: watched(spill.rows(), watcher) };
    }
  } finally {
    // The set-aside rows are no one's once read, or once the writing stopped.
    for (const spill of spills.values()) await spill.remove();
  }
}

/** Rows as they pass, shown to the split's watcher first. */
async function* watched(
  rows: AsyncIterable<PackageRow>,
  watcher: SplitWatch,
): AsyncGenerator<PackageRow> {
  for await (const row of rows) {
    await watcher.row(row);
    yield row;
  }
}

/** The rows of `ids` (in id order), each made from the stages read beside the ids. */
async function* rowsOf(
  outputs: StageOutputs,
  split: string,
  ids: readonly string[],
  facts: RowFacts,
): AsyncGenerator<PackageRow> {
  const splits = { [split]: ids };
  for await (
    const image of imageStages(outputs, { splits, flip: facts.flip, stages: ROW_STAGES })
  ) {
    const row = packageRow(image, facts);
    if (row === null) {
      throw new RowSourceError(
        `image ${image.id} (${split}): expected the latents of every item it needs, found some ` +
          `missing from the records read for the dataset`,
      );
    }
    yield row;
  }
}

/**
 * The dataset's rows as they are made: split by split (in name order), bucket by bucket (in name
 * order), each bucket's images in id order, each row built from the stages' outputs read beside
 * the bucket's ids (one pass over the stages per bucket) and handed on at once — to the layout,
 * and to whatever else sees every row (the split's text files, the report's tally). Which images
 * are rows, and their buckets, come from the census: no row is held once it has been handed on.
 *
 * @module
 */
import { compareIds } from "../dag/item_order.ts";
import type { CensusImage } from "./dataset_notes.ts";
import type { RowGroup, RowSplit } from "./layout.ts";
import { type PackageRow, packageRow, type RowFacts } from "./rows.ts";
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

/**
 * The rows of `ids`, made from the stages' outputs as the consumer reads them. `watch` is called
 * when a split starts, and what it returns sees each of the split's rows and its end.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ItemEntry, ItemOutputs } from "../dag/task.ts";
 * import type { Output } from "../store/records.ts";
 *
 * const entry = (out: Output): ItemEntry =>
 *   ({ id: "a", out, key: "k", ms: 1 });
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
 * const splits = datasetRows(outputs, new Map([["train", new Map([["256x256", ["a"]]])]]), {
 *   paths: { a: "a.png" }, labels: {}, flip: false, encodeOnly: true,
 * }, () => Promise.resolve({
 *   row: (row) => Promise.resolve(void seen.push(row.id)),
 *   end: () => Promise.resolve(void seen.push("end")),
 * }));
 * for await (const { groups } of splits) {
 *   for await (const { rows } of groups) for await (const _ of rows) { /* the layout reads them *\/ }
 * }
 * assert.deepEqual(seen, ["a", "end"]);
 * ```
 */
export async function* datasetRows(
  outputs: StageOutputs,
  ids: RowIds,
  facts: RowFacts,
  watch: (split: string) => Promise<SplitWatch>,
): AsyncGenerator<RowSplit> {
  for (const [split, buckets] of ids) {
    const watcher = await watch(split);
    yield { split, groups: groupsOf(outputs, split, buckets, facts, watcher) };
    await watcher.end();
  }
}

function* groupsOf(
  outputs: StageOutputs,
  split: string,
  buckets: ReadonlyMap<string, readonly string[]>,
  facts: RowFacts,
  watcher: SplitWatch,
): Generator<RowGroup> {
  for (const [bucket, ids] of buckets) {
    yield { bucket, rows: rowsOf(outputs, split, ids, facts, watcher) };
  }
}

async function* rowsOf(
  outputs: StageOutputs,
  split: string,
  ids: readonly string[],
  facts: RowFacts,
  watcher: SplitWatch,
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
    await watcher.row(row);
    yield row;
  }
}

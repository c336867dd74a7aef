/**
 * The upstream outputs of package, image by image: per split, its images in id order, each with
 * the recorded entry (output, key) of every stage that made it — fetch-images, verify-sizes,
 * preprocess, encode, optimize — for the image and, with flips, for its flipped item. The
 * stages' outputs are read as streams in id order beside the split's sorted ids (a merge join:
 * one pass over each stage per split), so nothing here holds the outputs of every item.
 *
 * @module
 */
import type { ItemEntry, ItemOutputs } from "../dag/task.ts";
import { compareIds, orderedReader } from "../dag/item_order.ts";
import { flippedId } from "../image/flipped_ids.ts";

/** The stages package reads per item, in the order manifest.json lists their keys. */
export const PROVENANCE_STAGES = [
  "fetch-images",
  "verify-sizes",
  "preprocess",
  "encode",
  "optimize",
] as const;

/** One of {@link PROVENANCE_STAGES}. */
export type Stage = typeof PROVENANCE_STAGES[number];

/** The recorded outputs of every stage. */
export type StageOutputs = Readonly<Record<Stage, ItemOutputs>>;

/** One item's entry in each stage (undefined where it did not succeed). */
export type ItemStages = Readonly<Record<Stage, ItemEntry | undefined>>;

/** One image of a split with what every stage recorded for it. */
export interface ImageStages {
  id: string;
  split: string;
  image: ItemStages;
  /** Its flipped item's entries, when the images are flipped. */
  flipped: ItemStages | null;
}

/**
 * The images of each split (in `splits`' order; within a split by id, see `compareIds`), each
 * with its entries of every stage.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ItemEntry, ItemOutputs } from "../dag/task.ts";
 *
 * const outputs = (ids: string[]): ItemOutputs => {
 *   const entries = new Map(ids.map((id): [string, ItemEntry] => [id, { id, out: { objects: {}, meta: null }, key: `k-${id}`, ms: 1 }]));
 *   return {
 *     size: entries.size,
 *     has: (id) => entries.has(id),
 *     get: (id) => Promise.resolve(entries.get(id)),
 *     async *[Symbol.asyncIterator]() { yield* [...entries.values()]; },
 *   };
 * };
 * const stages = {
 *   "fetch-images": outputs(["a", "b"]), "verify-sizes": outputs(["a", "b"]),
 *   preprocess: outputs(["a", "b"]), encode: outputs(["a", "b"]), optimize: outputs(["b"]),
 * };
 * const seen = [];
 * for await (const image of imageStages(stages, { splits: { train: ["b", "a"] }, flip: false })) {
 *   seen.push([image.id, image.image.optimize?.key ?? null]);
 * }
 * assert.deepEqual(seen, [["a", null], ["b", "k-b"]]);
 * ```
 */
export async function* imageStages(
  outputs: StageOutputs,
  { splits, flip, stages = PROVENANCE_STAGES }: {
    splits: Readonly<Record<string, readonly string[]>>;
    flip: boolean;
    /** The stages to read (the others' entries are left undefined); all by default. */
    stages?: readonly Stage[];
  },
): AsyncGenerator<ImageStages> {
  for (const [split, ids] of Object.entries(splits)) {
    // An id asked out of order (a flipped item sorts after ids that extend the image's id with
    // a character below "#") is looked up on its own; the rest are one pass per stage.
    const readers = stages.map((stage) =>
      [stage, orderedReader(outputs[stage], (id) => outputs[stage].get(id))] as const
    );
    const read = async (item: string) => {
      const out = Object.fromEntries(PROVENANCE_STAGES.map((s) => [s, undefined])) as Record<
        Stage,
        ItemEntry | undefined
      >;
      for (const [stage, reader] of readers) out[stage] = await reader(item);
      return out;
    };
    for (const id of [...ids].sort(compareIds)) {
      const image = await read(id);
      yield { id, split, image, flipped: flip ? await read(flippedId(id)) : null };
    }
  }
}

/**
 * Whether every stage made the item (its latents can be packaged).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const entry = { id: "a", out: { objects: {}, meta: null }, key: "k", ms: 1 };
 * const stages = {
 *   "fetch-images": entry, "verify-sizes": entry, preprocess: entry, encode: entry,
 *   optimize: undefined,
 * };
 * assert.equal(isComplete(stages), false);
 * ```
 */
export function isComplete(stages: ItemStages | null): boolean {
  return stages !== null && stages.optimize !== undefined && stages.encode !== undefined &&
    stages.preprocess !== undefined;
}

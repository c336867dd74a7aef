/**
 * The reconciliation a dataset states (`manifest.json`, the report's "Local copies"): of the
 * copies `dataset.adopt` names with the spec items the run handled, from what fetch-images
 * recorded for each item — the others verified read-only, as fetch-images' summary does. It is
 * made from recorded outputs and the copies themselves, never from a file an earlier run left,
 * and package's key holds both: its upstream outputs, and the copies' paths and listing
 * ({@link copiesFingerprint}), so files added to a copy rerun package in the plan as in the run.
 *
 * @module
 */
import { AdoptSources } from "../dataset/adopt.ts";
import { reconcileCopies } from "../dataset/adopt_summary.ts";
import type { DatasetItem } from "../dataset/item_index.ts";
import type { ItemOutcome, Reconciliation } from "../dataset/reconciliation.ts";
import type { Json } from "../store/canonical.ts";
import type { Output } from "../store/records.ts";

/** The dataset section as far as local copies go. */
export interface CopiesConfig {
  kind: string;
  adopt?: readonly string[];
}

/** The copies a dataset adopts from (a folder dataset is local already: none). */
function adoptPaths(dataset: CopiesConfig): readonly string[] {
  return dataset.kind === "folder" ? [] : dataset.adopt ?? [];
}

/**
 * What of the copies package's key holds: their paths and their listing (names, sizes and
 * modification times); null without copies.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const before = await copiesFingerprint({ kind: "ffhq", adopt: [dir] });
 * await Deno.writeTextFile(`${dir}/00042.png`, "an image");
 * assert.notDeepEqual(await copiesFingerprint({ kind: "ffhq", adopt: [dir] }), before);
 * assert.equal(await copiesFingerprint({ kind: "folder" }), null);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function copiesFingerprint(dataset: CopiesConfig): Promise<Json> {
  const paths = adoptPaths(dataset);
  if (paths.length === 0) return null;
  const sources = await AdoptSources.open(paths);
  try {
    return { sources: sources.paths, listing: sources.fingerprint };
  } finally {
    sources.close();
  }
}

/**
 * The reconciliation of the copies with the spec items the run handled (the first `limit` of
 * `spec`, which is read only when there are copies), given fetch-images' outputs; null without
 * copies.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/notes.txt`, "not an image");
 * const r = await statedReconciliation({ kind: "ffhq", adopt: [dir] }, {
 *   spec: () => Promise.resolve([]), fetched: [], stored: () => Promise.resolve(false),
 * });
 * assert.deepEqual(r?.extra, [`${dir}/notes.txt`]);
 * assert.equal(r?.planned, false);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function statedReconciliation(
  dataset: CopiesConfig,
  { spec, limit, fetched, stored, signal }: {
    /** Every item of the spec (fetch-json's index). */
    spec: () => Promise<readonly DatasetItem[]>;
    /** The run's `--limit`. */
    limit?: number;
    /** fetch-images' outputs with their item ids (their `adopt` says what happened to each). */
    fetched: AsyncIterable<{ id: string; out: Output }> | Iterable<{ id: string; out: Output }>;
    /** Whether an item's bytes are in the store (it was not read from the copies). */
    stored: (item: { md5: string | null }) => Promise<boolean>;
    signal?: AbortSignal;
  },
): Promise<Reconciliation | null> {
  const paths = adoptPaths(dataset);
  if (paths.length === 0) return null;
  const all = await spec();
  const recorded = new Map<string, ItemOutcome | undefined>();
  for await (const { id, out } of fetched) {
    recorded.set(id, (out.meta as { adopt?: ItemOutcome }).adopt);
  }
  return await reconcileCopies({
    paths,
    items: limit === undefined ? all : all.slice(0, limit),
    spec: all,
    recorded,
    stored,
    planned: false,
    signal,
  });
}

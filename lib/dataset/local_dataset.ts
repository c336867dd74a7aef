/**
 * The dataset kinds read where they lie, each listed into an item index: class folders
 * (`imagefolder`), WebDataset tar shards (`webdataset`) and Parquet tables (`parquet`); and what
 * tells that one changed (the fingerprint the listing's key holds).
 *
 * @module
 */
import type { SkippedFile } from "./folder_spec.ts";
import {
  imageFolderFingerprint,
  type ImageFolderSplit,
  ingestImageFolder,
} from "./imagefolder_spec.ts";
import type { ItemIndex } from "./item_index.ts";

/** The `dataset` sections of the kinds this module lists, as the config schema parses them. */
export type LocalDataset = {
  kind: "imagefolder";
  splits: Readonly<Record<string, ImageFolderSplit>>;
  extensions: readonly string[];
};

/**
 * Lists a dataset read in place into its item index, with what the listing skipped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.mkdir(`${dir}/train/cat`, { recursive: true });
 *   await Deno.writeFile(`${dir}/train/cat/1.png`, new Uint8Array([1]));
 *   const index = await ingestLocalDataset({
 *     kind: "imagefolder", splits: { train: `${dir}/train` }, extensions: [".png"],
 *   });
 *   assert.deepEqual(index.items.map((i) => i.id), ["train/cat/1"]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function ingestLocalDataset(
  dataset: LocalDataset,
): Promise<ItemIndex & { skipped: SkippedFile[] }> {
  switch (dataset.kind) {
    case "imagefolder":
      return await ingestImageFolder(dataset);
  }
}

/**
 * What tells that a dataset read in place changed when its config did not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.mkdir(`${dir}/train/cat`, { recursive: true });
 *   const dataset = { kind: "imagefolder", splits: { train: `${dir}/train` }, extensions: [".png"] } as const;
 *   const before = await localDatasetFingerprint(dataset);
 *   await Deno.writeFile(`${dir}/train/cat/1.png`, new Uint8Array([1]));
 *   assert.notEqual(await localDatasetFingerprint(dataset), before);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function localDatasetFingerprint(dataset: LocalDataset): Promise<string> {
  switch (dataset.kind) {
    case "imagefolder":
      return await imageFolderFingerprint(dataset);
  }
}

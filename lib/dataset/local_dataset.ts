/**
 * The dataset kinds read where they lie, each listed into an item index: class folders
 * (`imagefolder`), WebDataset tar shards (`webdataset`) and Parquet tables (`parquet`); what
 * tells that one changed (the fingerprint the listing's key holds). Their images are read back
 * where they lie (image_source.ts).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { SkippedFile } from "./folder_spec.ts";
import {
  imageFolderFingerprint,
  type ImageFolderSplit,
  ingestImageFolder,
} from "./imagefolder_spec.ts";
import type { ItemIndex } from "./item_index.ts";
import { SpecError } from "./item_index.ts";
import { ingestParquet } from "./parquet_table.ts";
import { expandGlobs } from "./shard_glob.ts";
import type { WalkDigests } from "./walk_digests.ts";
import { ingestWebDataset, type SplitFiles } from "./webdataset_spec.ts";

/** The `dataset` sections of the kinds this module lists, as the config schema parses them. */
export type LocalDataset =
  | {
    kind: "imagefolder";
    splits: Readonly<Record<string, ImageFolderSplit>>;
    extensions: readonly string[];
  }
  | {
    kind: "webdataset";
    shards?: readonly string[];
    splits?: Readonly<Record<string, readonly string[]>>;
    extensions: readonly string[];
  }
  | {
    kind: "parquet";
    files?: readonly string[];
    splits?: Readonly<Record<string, readonly string[]>>;
    image_column: string;
    id_column?: string;
    caption_column: string;
  };

/**
 * Lists a dataset read in place into its item index, with what the listing skipped. `digests`
 * (class folders) are the previous listing's, and gather this one's.
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
  { digests }: { digests?: WalkDigests } = {},
): Promise<ItemIndex & { skipped: SkippedFile[] }> {
  switch (dataset.kind) {
    case "imagefolder":
      return await ingestImageFolder({ ...dataset, digests });
    case "webdataset":
      return await ingestWebDataset(await splitFiles(dataset), dataset);
    case "parquet":
      return await ingestParquet(await splitFiles(dataset), dataset);
  }
}

/**
 * What tells that a dataset read in place changed when its config did not: for class folders
 * their listing, for shards and tables each file's path, size and modification time.
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
  if (dataset.kind === "imagefolder") return await imageFolderFingerprint(dataset);
  const hash = createHash("sha256");
  for (const [split, files] of await splitFiles(dataset)) {
    for (const file of files) {
      const info = await Deno.stat(file).catch(() => null);
      hash.update(`${split}\t${file}\t${info?.size ?? "-"}\t${info?.mtime?.getTime() ?? "-"}\n`);
    }
  }
  return hash.digest("hex");
}

/** Each split's files, patterns expanded (split `all` for a plain list), in the order given. */
async function splitFiles(
  dataset: Extract<LocalDataset, { kind: "webdataset" | "parquet" }>,
): Promise<SplitFiles> {
  const list = dataset.kind === "webdataset" ? dataset.shards : dataset.files;
  const field = dataset.kind === "webdataset" ? "shards" : "files";
  const named: [string, readonly string[], string][] = list
    ? [["all", list, `dataset.${field}`]]
    : Object.entries(dataset.splits ?? {}).map(([s, l]) => [s, l, `dataset.splits.${s}`]);
  const out: SplitFiles = [];
  for (const [split, patterns, where] of named) {
    const files = await expandGlobs(patterns).catch((e: Error) => {
      throw new SpecError(`${where}: ${e.message}`);
    });
    out.push([split, files]);
  }
  return out;
}

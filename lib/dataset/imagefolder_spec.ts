/**
 * Builds the item index of a class-folder dataset, the convention torchvision's `ImageFolder`
 * set (ImageNet's `train/n01440764/…`): `dataset.splits` maps each split to a folder whose
 * first-level sub-folders are the classes, or to a flat folder with a CSV of `file,class`
 * (ImageNet's validation images).
 *
 * - **Ids**: `<split>/<class>/<file stem>` (deeper folders inside a class folder keep their
 *   path: `<split>/<class>/<sub>/<stem>`); in a flat split, `<split>/<file stem>`.
 * - **Classes**: the class index is an image's class name's position in the sorted union (by
 *   code point, as Python's `sorted`) of the class names of every split, so one class has one
 *   index in every split. {@link classToIdx} computes it.
 * - **What is not an image of a class** fails alone or is skipped, as in a folder listing
 *   (`folder_spec.ts`): files directly in a class-folder split are skipped (they belong to no
 *   class); in a flat split, an image the CSV does not name fails, named, and CSV rows naming no
 *   image are counted in the listing's notes.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { parse } from "csv-parse";
import { folderFingerprint, ingestFolder, type SkippedFile } from "./folder_spec.ts";
import { type DatasetItem, type ItemIndex, SpecError } from "./item_index.ts";
import type { WalkDigests } from "./walk_digests.ts";

/** One split of `dataset.splits`: a class-folder folder, or a flat folder and its CSV. */
export type ImageFolderSplit = string | { path: string; labels: string };

/** Options of {@link ingestImageFolder} and {@link imageFolderFingerprint}. */
export interface ImageFolderOptions {
  /** Split name → folder (or folder and labels CSV). */
  splits: Readonly<Record<string, ImageFolderSplit>>;
  /** File name endings that count as images (default: the folder listing's). */
  extensions?: readonly string[];
  /**
   * The digests of the previous listing, and where this listing's go, each file under its
   * item path (`<split>/…`). Default: none remembered, every file read.
   */
  digests?: WalkDigests;
}

/** The index of a class-folder dataset plus what was left out of it. */
export interface ImageFolderIndex extends ItemIndex {
  skipped: SkippedFile[];
}

/**
 * Lists every split and returns the items in split order (splits by name), each with its
 * split as `category` and its class name as `class_name`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   for (const rel of ["train/dog/1.png", "train/cat/2.png", "val/3.png"]) {
 *     await Deno.mkdir(`${dir}/${rel.replace(/\/[^/]+$/, "")}`, { recursive: true });
 *     await Deno.writeFile(`${dir}/${rel}`, new Uint8Array([1]));
 *   }
 *   await Deno.writeTextFile(`${dir}/val.csv`, "file,class\n3.png,cat\n");
 *   const index = await ingestImageFolder({
 *     splits: { train: `${dir}/train`, val: { path: `${dir}/val`, labels: `${dir}/val.csv` } },
 *   });
 *   assert.deepEqual(index.items.map((i) => [i.id, i.category, i.class_name]), [
 *     ["train/cat/2", "train", "cat"],
 *     ["train/dog/1", "train", "dog"],
 *     ["val/3", "val", "cat"],
 *   ]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function ingestImageFolder(
  { splits, extensions, digests }: ImageFolderOptions,
): Promise<ImageFolderIndex> {
  const items: DatasetItem[] = [];
  const skipped: SkippedFile[] = [];
  for (const split of Object.keys(splits).sort()) {
    const source = splits[split];
    const folder = typeof source === "string" ? source : source.path;
    const listed = await ingestFolder(folder, {
      extensions,
      rootCategory: "",
      digests,
      memoPrefix: `${split}/`,
    }).catch((e) => {
      throw new SpecError(`dataset.splits.${split}: ${(e as Error).message}`);
    });
    skipped.push(...listed.skipped.map((s) => ({ ...s, path: `${split}/${s.path}` })));
    if (typeof source === "string") {
      for (const item of listed.items) {
        if (item.category === "") {
          skipped.push({ path: `${split}/${item.path}`, reason: "not inside a class folder" });
          continue;
        }
        items.push({
          ...item,
          id: `${split}/${item.id}`,
          path: `${split}/${item.path}`,
          category: split,
          class_name: item.category,
        });
      }
    } else {
      const classes = await readClassCsv(source.labels);
      const named = new Set<string>();
      for (const item of listed.items) {
        const name = classes.get(item.path) ?? classes.get(item.path.replace(/\.[^./]+$/, ""));
        const out: DatasetItem = {
          ...item,
          id: `${split}/${item.id}`,
          path: `${split}/${item.path}`,
          category: split,
        };
        if (name === undefined) {
          out.error ??=
            `${split}/${item.path}: ${source.labels} names no class for it (expected a row "${item.path},<class>")`;
        } else {
          out.class_name = name;
          named.add(classes.has(item.path) ? item.path : item.path.replace(/\.[^./]+$/, ""));
        }
        items.push(out);
      }
      const unmatched = [...classes.keys()].filter((f) => !named.has(f));
      if (unmatched.length > 0) {
        skipped.push({
          path: source.labels,
          reason: `${unmatched.length} row(s) name no image of ${folder}: ${
            unmatched.slice(0, 5).join(", ")
          }${unmatched.length > 5 ? ", …" : ""}`,
        });
      }
    }
  }
  return { source: "imagefolder", items, skipped };
}

/**
 * The class index: each class name's position in the sorted union of the names (by code
 * point, as Python's `sorted` and torchvision's `ImageFolder` order them).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(classToIdx(["n02", "B", "a", "n02"]), { B: 0, a: 1, n02: 2 });
 * ```
 */
export function classToIdx(names: Iterable<string>): Record<string, number> {
  // Code point order: JavaScript's default sort compares UTF-16 units, which differs above U+FFFF.
  const sorted = [...new Set(names)].sort((a, b) => {
    const x = [...a], y = [...b];
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
      if (d !== 0) return d;
    }
    return x.length - y.length;
  });
  return Object.fromEntries(sorted.map((name, i) => [name, i]));
}

/**
 * Classes present in some splits and absent from others, each with the splits that lack it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const missing = classesMissing([
 *   { category: "train", class_name: "cat" },
 *   { category: "train", class_name: "dog" },
 *   { category: "val", class_name: "cat" },
 * ]);
 * assert.deepEqual(missing, [{ class: "dog", absent: ["val"] }]);
 * ```
 */
export function classesMissing(
  items: readonly Pick<DatasetItem, "category" | "class_name">[],
): { class: string; absent: string[] }[] {
  const bySplit = new Map<string, Set<string>>();
  for (const item of items) {
    if (item.class_name === undefined) continue;
    if (!bySplit.has(item.category)) bySplit.set(item.category, new Set());
    bySplit.get(item.category)!.add(item.class_name);
  }
  const all = Object.keys(classToIdx([...bySplit.values()].flatMap((s) => [...s])));
  const splits = [...bySplit.keys()].sort();
  return all
    .map((name) => ({ class: name, absent: splits.filter((s) => !bySplit.get(s)!.has(name)) }))
    .filter((c) => c.absent.length > 0);
}

/**
 * What tells that a class-folder dataset changed: each split folder's listing (paths, sizes,
 * modification times) and the content of each labels CSV.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.mkdir(`${dir}/train/cat`, { recursive: true });
 *   const before = await imageFolderFingerprint({ splits: { train: `${dir}/train` } });
 *   await Deno.writeFile(`${dir}/train/cat/1.png`, new Uint8Array([1]));
 *   assert.notEqual(await imageFolderFingerprint({ splits: { train: `${dir}/train` } }), before);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function imageFolderFingerprint(
  { splits, extensions }: ImageFolderOptions,
): Promise<string> {
  const hash = createHash("sha256");
  for (const split of Object.keys(splits).sort()) {
    const source = splits[split];
    const folder = typeof source === "string" ? source : source.path;
    hash.update(`${split}\t${await folderFingerprint(folder, { extensions })}\n`);
    if (typeof source !== "string") {
      const bytes = await Deno.readFile(source.labels).catch(() => new Uint8Array());
      hash.update(`labels\t${createHash("sha256").update(bytes).digest("hex")}\n`);
    }
  }
  return hash.digest("hex");
}

/** Raised for a labels CSV that is not `file,class` rows; names file, line and column. */
export class ClassCsvError extends Error {
  override readonly name = "ClassCsvError";
}

/** The `file,class` CSV of a flat split: file (as listed, or without its extension) → class. */
async function readClassCsv(path: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new ClassCsvError(`${path}: the labels CSV cannot be read: ${(e as Error).message}`);
  }
  const out = new Map<string, string>();
  const parser = parse(text.replace(/^\uFEFF/, ""), {
    info: true,
    skip_empty_lines: true,
    relax_column_count: true,
  });
  let header = true;
  for await (
    const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>
  ) {
    if (header) {
      if (record.length !== 2 || record[0] !== "file" || record[1] !== "class") {
        throw new ClassCsvError(
          `${path}:${info.lines}: expected the header "file,class", found ${
            JSON.stringify(record.join(","))
          }`,
        );
      }
      header = false;
      continue;
    }
    if (record.length !== 2 || record[0] === "" || record[1] === "") {
      throw new ClassCsvError(
        `${path}:${info.lines}: expected two non-empty fields (file,class), found ${
          JSON.stringify(record.join(","))
        }`,
      );
    }
    const seen = out.get(record[0]);
    if (seen !== undefined && seen !== record[1]) {
      throw new ClassCsvError(
        `${path}:${info.lines}: ${record[0]} has class ${
          JSON.stringify(seen)
        } on an earlier line, found ${JSON.stringify(record[1])}`,
      );
    }
    out.set(record[0], record[1]);
  }
  if (header) throw new ClassCsvError(`${path}: empty, expected the header "file,class"`);
  return out;
}

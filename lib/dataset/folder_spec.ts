/**
 * Builds the item index of a local image folder such as BSDS500 (`<root>/{train,val,test}/*.jpg`):
 * sizes and MD5s are computed, the category is the first sub-folder, and each item carries the
 * file's absolute `local_path` so it can be imported into the store without any HTTP.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { resolve } from "node:path";
import type { DatasetItem, ItemIndex } from "./item_index.ts";
import { SpecError } from "./item_index.ts";

/** Options of {@link ingestFolder}. */
export interface FolderSpecOptions {
  /** File name endings (lowercase) that count as images. Default `.jpg`, `.jpeg`, `.png`. */
  extensions?: string[];
  /** Images directly in `root` (not in a sub-folder) get this category. Default `all`. */
  rootCategory?: string;
}

async function md5OfFile(path: string): Promise<string> {
  const hash = createHash("md5");
  using file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

async function walk(dir: string, rel: string, out: string[], exts: string[]): Promise<void> {
  const entries: Deno.DirEntry[] = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const abs = `${dir}/${e.name}`;
    const r = rel ? `${rel}/${e.name}` : e.name;
    const info = e.isSymlink ? await Deno.stat(abs) : e;
    if (info.isDirectory) await walk(abs, r, out, exts);
    else if (info.isFile && exts.some((x) => e.name.toLowerCase().endsWith(x))) out.push(r);
  }
}

/**
 * Lists the images under `root` and returns their index, in path order. Ids are the relative
 * path without extension (`train/2092`), categories the first sub-folder (`train`).
 *
 * @example
 * ```ts
 * const index = await ingestFolder("/data/BSDS500/data/images");
 * // index.items[0] = { id: "test/100007", category: "test", local_path: "/data/…/100007.jpg", … }
 * ```
 */
export async function ingestFolder(
  root: string,
  { extensions = [".jpg", ".jpeg", ".png"], rootCategory = "all" }: FolderSpecOptions = {},
): Promise<ItemIndex> {
  const abs = resolve(root);
  try {
    if (!(await Deno.stat(abs)).isDirectory) throw new SpecError(`${abs}: not a directory`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new SpecError(`${abs}: the dataset folder does not exist`);
    }
    throw error;
  }
  const files: string[] = [];
  await walk(abs, "", files, extensions.map((x) => x.toLowerCase()));
  if (files.length === 0) {
    throw new SpecError(
      `${abs}: no images found (looked for ${extensions.join(", ")} in the folder and below)`,
    );
  }
  const items: DatasetItem[] = [];
  const ids = new Map<string, string>();
  for (const rel of files) {
    const slash = rel.indexOf("/");
    const category = slash < 0 ? rootCategory : rel.slice(0, slash);
    const id = rel.replace(/\.[^./]+$/, "");
    const clash = ids.get(id);
    if (clash) throw new SpecError(`${abs}: ${rel} and ${clash} both give the item id "${id}"`);
    ids.set(id, rel);
    const localPath = `${abs}/${rel}`;
    items.push({
      id,
      url: null,
      path: rel,
      size: (await Deno.stat(localPath)).size,
      md5: await md5OfFile(localPath),
      pixel_size: null,
      pixel_md5: null,
      category,
      local_path: localPath,
    });
  }
  return { source: "folder", items };
}

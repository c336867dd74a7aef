/**
 * Builds the item index of a local image folder such as BSDS500 (`<root>/{train,val,test}/*.jpg`)
 * or a folder of one's own photos.
 *
 * - **Which files**: every format sharp decodes, by extension ({@link IMAGE_EXTENSIONS}, case
 *   ignored; a GIF gives its first frame). Other files are skipped and listed with the reason;
 *   names starting with a dot (`.DS_Store`, `.git`) are ignored.
 * - **Ids and splits**: an item's id is its path relative to the folder without the extension
 *   (`train/2092`); its category — the split when there are no labels — is its first
 *   sub-folder (`train`), or `all` for files directly in the folder. Deeper folders belong to
 *   their first-level folder's split.
 * - **Problems fail one item, never the listing**: two files giving one id (`photo.jpg`,
 *   `photo.png`), an empty file, a broken link, a link loop, or a link to something outside
 *   the paths this run may read each become an item (its id then keeps its extension) carrying
 *   the reason, which `fetch-images` fails with; every other image is built.
 * - **Symbolic links** are followed, to files and to folders, when their target lies inside the
 *   dataset folder or where the run may read anyway (`deno task run` grants only the paths the
 *   config names). The freshness check ({@link folderFingerprint}) is the same walk
 *   (folder_walk.ts) and reads the targets' sizes and modification times, so an image edited
 *   behind a link is noticed.
 * - **Digests**: a file is read and hashed only when its size, time or inode differ from what
 *   the previous listing remembered (walk_digests.ts); an unchanged folder costs a `stat` per file.
 *
 * @module
 */

import { join, resolve } from "node:path";
import type { DatasetItem, ItemIndex } from "./item_index.ts";
import { SpecError } from "./item_index.ts";
import { IMAGE_EXTENSIONS, imageNameTest } from "./image_extensions.ts";
import { type SkippedFile, walkFingerprint, walkFolder } from "./folder_walk.ts";
import type { DirReader } from "./read_dir.ts";
import { DigestMemo } from "./digest_memo.ts";
import { WalkDigests } from "./walk_digests.ts";

export type { SkippedFile };

/** Options of {@link ingestFolder} and {@link folderFingerprint}. */
export interface FolderSpecOptions {
  /** File name endings (case ignored) that count as images. Default {@link IMAGE_EXTENSIONS}. */
  extensions?: readonly string[];
  /** Images directly in `root` (not in a sub-folder) get this category. Default `all`. */
  rootCategory?: string;
  /**
   * The digests of the previous listing, and where this listing's go (default: none
   * remembered, every file read).
   */
  digests?: WalkDigests;
  /** Before each path in the digests' memo (`train/` for a split). Default none. */
  memoPrefix?: string;
  /** How directories are read (default `"auto"`, see read_dir.ts). */
  reader?: DirReader;
}

/** The index of a folder plus what was left out of it. */
export interface FolderIndex extends ItemIndex {
  /** Files not read (not an image by extension), in path order. */
  skipped: SkippedFile[];
}

/** Raised when the dataset folder itself is missing or not a folder. */
export class DatasetFolderError extends Error {
  override readonly name = "DatasetFolderError";
}

/**
 * Checks that the dataset folder exists and is a folder; the message names the path as given
 * and as resolved.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await checkDatasetFolder(dir);
 *   await Deno.writeTextFile(`${dir}/a.txt`, "not a folder");
 *   await assert.rejects(checkDatasetFolder(`${dir}/a.txt`), /is a file, expected a folder/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function checkDatasetFolder(root: string): Promise<void> {
  const abs = resolve(root);
  const where = abs === root ? root : `${root} (${abs})`;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(abs);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new DatasetFolderError(`the dataset folder ${where} does not exist`);
    }
    throw new DatasetFolderError(
      `the dataset folder ${where} cannot be read: ${(error as Error).message}`,
    );
  }
  if (!info.isDirectory) {
    throw new DatasetFolderError(`the dataset folder ${where} is a file, expected a folder`);
  }
}

/**
 * Lists the images under `root` and returns their index in path order, with the files it
 * skipped. See the module documentation for ids, splits, links and problems.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeFile(`${dir}/a.png`, new Uint8Array([137, 80, 78, 71]));
 *   await Deno.writeTextFile(`${dir}/notes.txt`, "hello");
 *   const index = await ingestFolder(dir);
 *   assert.deepEqual(index.items.map((i) => [i.id, i.category]), [["a", "all"]]);
 *   assert.deepEqual(index.skipped.map((s) => s.path), ["notes.txt"]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function ingestFolder(
  root: string,
  options: FolderSpecOptions = {},
): Promise<FolderIndex> {
  const { extensions = IMAGE_EXTENSIONS, rootCategory = "all", reader } = options;
  const abs = resolve(root);
  await checkDatasetFolder(root).catch((e) => {
    throw new SpecError((e as Error).message);
  });
  const walk = await walkFolder(abs, { isImage: imageNameTest(extensions), reader });
  const { skipped } = walk;
  if (walk.rels.length === 0) {
    const also = skipped.length
      ? `; skipped ${skipped.length}: ${skipped.slice(0, 5).map((s) => s.path).join(", ")}${
        skipped.length > 5 ? ", …" : ""
      }`
      : "";
    throw new SpecError(
      `${abs}: no images found (looked for ${
        extensions.join(", ")
      } in the folder and below${also})`,
    );
  }
  const ids = assignIds(walk.rels);
  const problems = walk.rels.map((rel, k) =>
    walk.problems.get(k) ?? ids[k].clash ??
      (walk.size[k] === 0 ? `${rel} is empty (0 bytes)` : undefined)
  );
  const digests = options.digests ?? new WalkDigests(DigestMemo.empty());
  const md5s = await digests.of(walk, abs, {
    prefix: options.memoPrefix,
    skip: (k) => problems[k] !== undefined,
  });
  const items: DatasetItem[] = [];
  for (const [k, rel] of walk.rels.entries()) {
    const slash = rel.indexOf("/");
    const problem = problems[k];
    const item: DatasetItem = {
      id: ids[k].id,
      url: null,
      path: rel,
      size: problem === undefined ? walk.size[k] : null,
      md5: problem === undefined ? md5s[k] : null,
      pixel_size: null,
      pixel_md5: null,
      category: slash < 0 ? rootCategory : rel.slice(0, slash),
      local_path: join(abs, rel),
    };
    if (problem !== undefined) item.error = problem;
    items.push(item);
  }
  return { source: "folder", items, skipped };
}

/**
 * What tells that a folder's images changed: every image file's path, size and modification
 * time, found by the same walk as {@link ingestFolder} (links followed the same way), and what
 * stops an entry from being used.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const before = await folderFingerprint(dir);
 *   await Deno.writeFile(`${dir}/a.png`, new Uint8Array([1]));
 *   assert.notEqual(await folderFingerprint(dir), before);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function folderFingerprint(
  root: string,
  { extensions = IMAGE_EXTENSIONS, reader }: FolderSpecOptions = {},
): Promise<string> {
  return walkFingerprint(
    await walkFolder(resolve(root), { isImage: imageNameTest(extensions), reader }),
  );
}

/**
 * Ids are paths without their extension; files that would share one keep their extension
 * (unique, since paths are) and carry the clash as their problem.
 */
function assignIds(rels: string[]): { id: string; clash?: string }[] {
  const bare = (rel: string) => rel.replace(/\.[^./]+$/, "");
  const clashing = new Map<number, string>();
  for (;;) {
    const byId = new Map<string, number[]>();
    rels.forEach((rel, k) => {
      const id = clashing.has(k) ? rel : bare(rel);
      byId.set(id, [...byId.get(id) ?? [], k]);
    });
    let changed = false;
    for (const [id, group] of byId) {
      if (group.length < 2) continue;
      for (const k of group) {
        if (clashing.has(k)) continue;
        const others = group.filter((o) => o !== k).map((o) => rels[o]);
        clashing.set(
          k,
          `${rels[k]} and ${others.join(", ")} both give the item id ${JSON.stringify(id)} ` +
            `(an id is the path without its extension): rename one of them`,
        );
        changed = true;
      }
    }
    if (!changed) break;
  }
  return rels.map((rel, k) =>
    clashing.has(k) ? { id: rel, clash: clashing.get(k) } : { id: bare(rel) }
  );
}

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
 *   config names). The freshness check ({@link folderFingerprint}) walks the same way and reads
 *   the targets' sizes and modification times, so an image edited behind a link is noticed.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import type { DatasetItem, ItemIndex } from "./item_index.ts";
import { SpecError } from "./item_index.ts";
import { IMAGE_EXTENSIONS, imageNameTest } from "./image_extensions.ts";

/** Options of {@link ingestFolder} and {@link folderFingerprint}. */
export interface FolderSpecOptions {
  /** File name endings (case ignored) that count as images. Default {@link IMAGE_EXTENSIONS}. */
  extensions?: readonly string[];
  /** Images directly in `root` (not in a sub-folder) get this category. Default `all`. */
  rootCategory?: string;
}

/** A file of the folder that is not read, with why. */
export interface SkippedFile {
  /** Path relative to the folder. */
  path: string;
  reason: string;
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

/** One entry the walk found: a file to read, or one that cannot be used, with the reason. */
interface Entry {
  rel: string;
  /** Absolute path through the folder (links not resolved), for reading. */
  path: string;
  size: number | null;
  mtime: number | null;
  problem?: string;
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
  { extensions = IMAGE_EXTENSIONS, rootCategory = "all" }: FolderSpecOptions = {},
): Promise<FolderIndex> {
  const abs = resolve(root);
  await checkDatasetFolder(root).catch((e) => {
    throw new SpecError((e as Error).message);
  });
  const { entries, skipped } = await walkFolder(abs, imageNameTest(extensions));
  if (entries.length === 0) {
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
  const ids = assignIds(entries.map((e) => e.rel));
  const items: DatasetItem[] = [];
  for (const [k, e] of entries.entries()) {
    const slash = e.rel.indexOf("/");
    const { id, clash } = ids[k];
    let problem = e.problem ?? clash;
    if (problem === undefined && e.size === 0) problem = `${e.rel} is empty (0 bytes)`;
    const item: DatasetItem = {
      id,
      url: null,
      path: e.rel,
      size: problem === undefined ? e.size : null,
      md5: problem === undefined ? await md5OfFile(e.path) : null,
      pixel_size: null,
      pixel_md5: null,
      category: slash < 0 ? rootCategory : e.rel.slice(0, slash),
      local_path: e.path,
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
  { extensions = IMAGE_EXTENSIONS }: FolderSpecOptions = {},
): Promise<string> {
  const { entries, skipped } = await walkFolder(resolve(root), imageNameTest(extensions));
  const hash = createHash("sha256");
  for (const e of entries) hash.update(`${e.rel}\t${e.size}\t${e.mtime}\t${e.problem ?? ""}\n`);
  for (const s of skipped) hash.update(`skipped\t${s.path}\n`);
  return hash.digest("hex");
}

async function md5OfFile(path: string): Promise<string> {
  const hash = createHash("md5");
  using file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
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

async function walkFolder(
  root: string,
  isImage: (name: string) => boolean,
): Promise<{ entries: Entry[]; skipped: SkippedFile[] }> {
  const entries: Entry[] = [];
  const skipped: SkippedFile[] = [];
  const realRoot = await realPathOr(root);
  const hasOtherExtension = (name: string) => /\.[^./]+$/.test(name) && !isImage(name);

  const walk = async (dir: string, rel: string, ancestors: Map<string, string>) => {
    let list: Deno.DirEntry[];
    try {
      list = await Array.fromAsync(Deno.readDir(dir));
    } catch (error) {
      entries.push(problemEntry(rel, dir, `the folder ${rel} cannot be read: ${describe(error)}`));
      return;
    }
    list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of list) {
      if (e.name.startsWith(".")) continue;
      const path = join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      let info: Deno.FileInfo | Deno.DirEntry = e;
      if (e.isSymlink) {
        const link = await followLink(path, r, realRoot);
        if ("problem" in link) {
          // A broken link named like a document was never going to be read.
          if (hasOtherExtension(e.name)) skipped.push({ path: r, reason: notImage(e.name) });
          else entries.push(problemEntry(r, path, link.problem));
          continue;
        }
        info = link.info;
        if (info.isDirectory && ancestors.has(link.real)) {
          const to = ancestors.get(link.real) || "the dataset folder itself";
          entries.push(problemEntry(r, path, `${r} is a link loop: it leads back to ${to}`));
          continue;
        }
        if (info.isDirectory) {
          await walk(path, r, new Map([...ancestors, [link.real, r]]));
          continue;
        }
      }
      if (info.isDirectory) {
        const real = await realPathOr(path);
        await walk(path, r, new Map([...ancestors, [real, r]]));
      } else if (!isImage(e.name)) {
        skipped.push({ path: r, reason: notImage(e.name) });
      } else {
        const stat = "mtime" in info ? info : await Deno.stat(path).catch(unreadableAsNull);
        entries.push({
          rel: r,
          path,
          size: stat?.size ?? null,
          mtime: stat?.mtime?.getTime() ?? null,
          problem: stat ? undefined : `${r} cannot be read`,
        });
      }
    }
  };
  await walk(root, "", new Map([[realRoot, ""]]));
  return { entries, skipped };
}

/** Where a link leads, or why it cannot be followed. */
async function followLink(
  path: string,
  rel: string,
  realRoot: string,
): Promise<{ info: Deno.FileInfo; real: string } | { problem: string }> {
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch (error) {
    const target = await Deno.readLink(path).catch((e) => unreadableAsNull(e) ?? "?");
    if (error instanceof Deno.errors.NotFound) {
      return { problem: `${rel} is a broken link: its target ${target} does not exist` };
    }
    if (error instanceof Deno.errors.FilesystemLoop || /os error 40\b/.test(String(error))) {
      return { problem: `${rel} is a link loop: ${target} leads back to itself` };
    }
    return { problem: `${rel} is a link that cannot be followed: ${describe(error)}` };
  }
  const inside = real === realRoot || real.startsWith(realRoot + "/");
  if (!inside) {
    const granted = await Deno.permissions.query({ name: "read", path: real });
    if (granted.state !== "granted") {
      return {
        problem: `${rel} links to ${real}, outside the dataset folder and the paths this run ` +
          `may read: copy the file into the dataset folder, or point dataset.path at the ` +
          `folder that holds it`,
      };
    }
  }
  try {
    return { info: await Deno.stat(path), real };
  } catch (error) {
    return { problem: `${rel} is a link that cannot be followed: ${describe(error)}` };
  }
}

function problemEntry(rel: string, path: string, problem: string): Entry {
  return { rel, path, size: null, mtime: null, problem };
}

function notImage(name: string): string {
  const ext = /\.[^./]+$/.exec(name)?.[0];
  return ext ? `not an image by its extension (${ext})` : "not an image by its extension (none)";
}

/**
 * A folder's resolved path, or the path as given where this run may not resolve it (links are
 * then compared by the path as given).
 */
async function realPathOr(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch (error) {
    if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
      return path;
    }
    throw error;
  }
}

/** `null` for an entry that is gone or may not be read (its item then says so); else throws. */
function unreadableAsNull(error: unknown): null {
  if (
    error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.FilesystemLoop
  ) return null;
  throw error;
}

function describe(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) return "outside the paths this run may read";
  return (error as Error)?.message ?? String(error);
}

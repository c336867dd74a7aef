/**
 * The walk of a dataset folder that both its listing and its freshness check make: every image
 * file under the folder (by extension) with its size, modification time and inode, in path
 * order; what stops an entry from being used (a broken link, a loop, a folder that cannot be
 * read); and the files that are not images. One `stat` per file and no read: the listing reads a
 * file only when these say it changed (digest_memo.ts), and the freshness check
 * ({@link walkFingerprint}) hashes only the walk.
 *
 * - Names starting with a dot are ignored.
 * - **Links** are followed, to files and folders, when their target lies inside the folder or
 *   where the run may read anyway; a folder reached twice through links is a loop.
 * - **Order**: names in code-unit order within each folder, folders depth-first — which is the
 *   order of the relative paths with `/` taken as lower than any character
 *   ({@link compareWalkOrder}).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { EntryKind, UnreadableDirError } from "./dir_entries.ts";
import { type DirReader, readDirEntries } from "./read_dir.ts";

/** A file of the folder that is not read, with why. */
export interface SkippedFile {
  /** Path relative to the folder. */
  path: string;
  reason: string;
}

/** The image files a walk found, as parallel arrays in walk order. */
export interface FolderWalk {
  /** Each file's path relative to the folder (through links, not resolved). */
  rels: string[];
  /** Bytes; 0 for an entry with a problem. */
  size: number[];
  /** Modification time in whole ms; 0 for an entry with a problem. */
  mtimeMs: number[];
  /** Inode number; 0 for an entry with a problem. */
  ino: number[];
  /** Why entry `k` cannot be used, by index. */
  problems: Map<number, string>;
  /** Files that are not images by their name, in walk order. */
  skipped: SkippedFile[];
}

/** Options of {@link walkFolder}. */
export interface WalkOptions {
  /** Whether a file name is an image's. */
  isImage: (name: string) => boolean;
  /** How directories are read (default `"auto"`, see read_dir.ts). */
  reader?: DirReader;
}

/**
 * Walks the folder `root` (an absolute path). Problems never throw: each becomes an entry with
 * its reason, so one bad entry fails one item.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.mkdir(`${dir}/train`);
 *   await Deno.writeTextFile(`${dir}/train/1.png`, "png");
 *   await Deno.writeTextFile(`${dir}/notes.txt`, "hello");
 *   const walk = await walkFolder(dir, { isImage: (name) => name.endsWith(".png") });
 *   assert.deepEqual(walk.rels, ["train/1.png"]);
 *   assert.equal(walk.size[0], 3);
 *   assert.deepEqual(walk.skipped.map((s) => s.path), ["notes.txt"]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function walkFolder(
  root: string,
  { isImage, reader = "auto" }: WalkOptions,
): Promise<FolderWalk> {
  const walk: FolderWalk = {
    rels: [],
    size: [],
    mtimeMs: [],
    ino: [],
    problems: new Map(),
    skipped: [],
  };
  const found = (rel: string, size: number, mtimeMs: number, ino: number) => {
    walk.rels.push(rel);
    walk.size.push(size);
    walk.mtimeMs.push(mtimeMs);
    walk.ino.push(ino);
  };
  const problem = (rel: string, why: string) => {
    walk.problems.set(walk.rels.length, why);
    found(rel, 0, 0, 0);
  };
  const realRoot = await realPathOr(root);
  const hasOtherExtension = (name: string) => /\.[^./]+$/.test(name) && !isImage(name);
  let breath = performance.now();

  const visit = async (dir: string, rel: string, ancestors: Map<string, string>) => {
    // A walk of a million files takes seconds: let timers and output run meanwhile.
    if (performance.now() - breath > 100) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      breath = performance.now();
    }
    let entries;
    try {
      entries = readDirEntries(dir, reader);
    } catch (error) {
      if (!(error instanceof UnreadableDirError)) throw error;
      problem(rel, `the folder ${rel} cannot be read: ${error.reason}`);
      return;
    }
    const { names, kinds } = entries;
    for (let k = 0; k < names.length; k++) {
      const name = names[k];
      if (name.charCodeAt(0) === 46) continue; // a dot: hidden
      const r = rel ? `${rel}/${name}` : name;
      const kind = kinds[k];
      if (kind === EntryKind.File) {
        if (!isImage(name)) walk.skipped.push({ path: r, reason: notImage(name) });
        else if (entries.errors.has(k)) problem(r, `${r} cannot be read`);
        else found(r, entries.size[k], entries.mtimeMs[k], entries.ino[k]);
      } else if (kind === EntryKind.Dir) {
        const path = join(dir, name);
        await visit(path, r, new Map([...ancestors, [await realPathOr(path), r]]));
      } else if (kind === EntryKind.Link) {
        const path = join(dir, name);
        const link = await followLink(path, r, realRoot);
        if ("problem" in link) {
          // A broken link named like a document was never going to be read.
          if (hasOtherExtension(name)) walk.skipped.push({ path: r, reason: notImage(name) });
          else problem(r, link.problem);
        } else if (link.info.isDirectory) {
          if (ancestors.has(link.real)) {
            const to = ancestors.get(link.real) || "the dataset folder itself";
            problem(r, `${r} is a link loop: it leads back to ${to}`);
          } else await visit(path, r, new Map([...ancestors, [link.real, r]]));
        } else if (!isImage(name)) walk.skipped.push({ path: r, reason: notImage(name) });
        else if (!link.info.isFile) problem(r, `${r} is not a regular file`);
        else found(r, link.info.size, link.info.mtime?.getTime() ?? 0, link.info.ino ?? 0);
      } else if (isImage(name)) problem(r, `${r} is not a regular file`);
      else walk.skipped.push({ path: r, reason: notImage(name) });
    }
  };
  await visit(root, "", new Map([[realRoot, ""]]));
  return walk;
}

/**
 * What tells that a walk's result changed: a sha256 over every entry's path, size,
 * modification time, inode and problem, and the skipped files' paths.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const walk = { rels: ["a.png"], size: [3], mtimeMs: [1], ino: [7], problems: new Map(), skipped: [] };
 * const touched = { ...walk, mtimeMs: [2] };
 * assert.notEqual(walkFingerprint(walk), walkFingerprint(touched));
 * ```
 */
export function walkFingerprint(walk: FolderWalk): string {
  const hash = createHash("sha256");
  // Entries go through one buffer: hashing them one by one would cost more than the walk.
  const encoder = new TextEncoder();
  const buffer = new Uint8Array(1 << 20);
  const view = new DataView(buffer.buffer);
  let at = 0;
  const flush = () => {
    hash.update(buffer.subarray(0, at));
    at = 0;
  };
  const text = (s: string) => {
    if (at + s.length * 3 + 1 > buffer.length) flush();
    if (s.length * 3 + 1 > buffer.length) {
      hash.update(s);
      return;
    }
    at += encoder.encodeInto(s, buffer.subarray(at)).written;
    buffer[at++] = 0;
  };
  for (let k = 0; k < walk.rels.length; k++) {
    text(walk.rels[k]);
    const problem = walk.problems.get(k);
    if (problem !== undefined) {
      text(problem);
      continue;
    }
    if (at + 24 > buffer.length) flush();
    view.setFloat64(at, walk.size[k]);
    view.setFloat64(at + 8, walk.mtimeMs[k]);
    view.setFloat64(at + 16, walk.ino[k]);
    at += 24;
  }
  text("skipped");
  for (const s of walk.skipped) text(s.path);
  flush();
  return hash.digest("hex");
}

/**
 * Compares two relative paths in walk order: code-unit order with `/` below every character, so
 * a folder's files come right after the folder's name and before a sibling that extends it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(["a.jpg", "a/b.jpg", "ab.jpg"].sort(compareWalkOrder), ["a/b.jpg", "a.jpg", "ab.jpg"]);
 * ```
 */
export function compareWalkOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x === 47) x = -1;
    if (y === 47) y = -1;
    return x - y;
  }
  return a.length - b.length;
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

/**
 * The marker latentforge leaves in every folder it publishes (`.latentforge.json`): which files
 * it wrote (digest, size, modification time), which cache and config wrote them, and whether
 * the dataset is complete or partial (a `--limit` run, a run in which every item failed). A
 * folder without one was not made by latentforge and is never replaced or emptied.
 *
 * @module
 */
import { join } from "node:path";
import { hashJson } from "./canonical.ts";

/** The marker's file name inside a published folder. */
export const MARKER = ".latentforge.json";

/** Size and modification time of a published file when it was written. */
export interface FileStat {
  size: number;
  /** Milliseconds since the epoch. */
  mtimeMs: number;
}

/** What a published folder holds and who wrote it. */
export interface OutMarker {
  /** `hashJson(files)`: equal digests mean equal contents. */
  digest: string;
  /** Relative path → sha256 of every published file. */
  files: Record<string, string>;
  /** Relative path → size and mtime, checked on every publish (absent in old markers). */
  stats?: Record<string, FileStat>;
  /** The cache directory whose objects these are. */
  cache?: string;
  /** The config file that shaped them, when known. */
  config?: string;
  /** When the folder was last written (ISO 8601). */
  written?: string;
  /** False for a partial dataset; old markers lack it and count as complete. */
  complete?: boolean;
  /** Why the dataset is partial (e.g. `--limit 5`). */
  partial?: string;
  /** Images the dataset holds, when known. */
  images?: number;
}

/** Digest of a set of files (relative path → sha256). */
export function filesDigest(files: Record<string, string>): string {
  return hashJson(files);
}

/**
 * Reads a folder's marker: null when the folder has none; `"unreadable"` when the file is
 * there but is not a marker latentforge writes (the folder is then treated as foreign).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "./objects.ts";
 * import { publishDirectory } from "./publish.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const store = new ObjectStore(`${dir}/cache`);
 * assert.equal(await readMarker(`${dir}/out`), null);
 * const index = await store.put(new TextEncoder().encode("{}"));
 * await publishDirectory(store, { "index.json": index }, `${dir}/out`);
 * const marker = await readMarker(`${dir}/out`);
 * assert.ok(marker && marker !== "unreadable");
 * assert.deepEqual(marker.files, { "index.json": index });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readMarker(dir: string): Promise<OutMarker | null | "unreadable"> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dir, MARKER));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
  try {
    const value = JSON.parse(text);
    const files = value?.files;
    if (
      typeof value?.digest !== "string" || files === null || typeof files !== "object" ||
      Object.values(files).some((d) => typeof d !== "string")
    ) return "unreadable";
    return value as OutMarker;
  } catch (e) {
    // Not JSON (edited, or cut short): a marker latentforge cannot read, as the caller says.
    if (!(e instanceof SyntaxError)) throw e;
    return "unreadable";
  }
}

/**
 * The `--cache` directory: a path naming something other than a directory is a bad invocation
 * (exit code 2), said before any work.
 *
 * @module
 */
import { resolve } from "node:path";

/** Raised when `--cache` names a file (or another non-directory). */
export class CacheDirError extends Error {
  override readonly name = "CacheDirError";
  /** A bad invocation (exit code 2): nothing was done. */
  readonly exitCode = 2;
}

/**
 * Throws {@link CacheDirError} unless `dir` is a directory or does not exist yet.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await checkCacheDir(`${dir}/cache`); // not made yet: made by the run
 * await Deno.writeTextFile(`${dir}/notes.txt`, "");
 * await assert.rejects(checkCacheDir(`${dir}/notes.txt`), CacheDirError);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkCacheDir(dir: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(dir);
  } catch (e) {
    // Missing: created later. Outside the granted paths: the command's own access says so.
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotCapable) return;
    if (e instanceof Deno.errors.NotADirectory) {
      throw new CacheDirError(
        `--cache ${resolve(dir)}: a part of the path is a file, expected a directory`,
      );
    }
    throw e;
  }
  if (!info.isDirectory) {
    throw new CacheDirError(
      `--cache ${resolve(dir)} is a file, expected a directory (the cache latentforge creates ` +
        `and keeps its work in): choose another path`,
    );
  }
}

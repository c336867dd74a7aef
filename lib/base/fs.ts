/**
 * File-system steps every layer takes the same way.
 *
 * @module
 */

/**
 * Removes a file or an empty folder (any folder with `recursive`); one that is already gone is
 * what was wanted. Any other error (a permission, a full folder) is the caller's to see.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/note.txt`, "x");
 * await removeIfPresent(`${dir}/note.txt`);
 * await removeIfPresent(`${dir}/never-written`); // no error: it is gone either way
 * assert.deepEqual([...Deno.readDirSync(dir)], []);
 * await Deno.remove(dir);
 * ```
 */
export async function removeIfPresent(
  path: string,
  options: Deno.RemoveOptions = {},
): Promise<void> {
  try {
    await Deno.remove(path, options);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Writes every byte to an open file: one `write` may take fewer bytes than it was given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const file = await Deno.open(`${dir}/a.bin`, { write: true, create: true });
 * await writeAll(file, new Uint8Array(100_000).fill(7));
 * file.close();
 * assert.equal((await Deno.stat(`${dir}/a.bin`)).size, 100_000);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/**
 * A file's or folder's information, or null when nothing is there. Any other error (a
 * permission) is the caller's to see.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * assert.equal((await statOrNull(dir))?.isDirectory, true);
 * assert.equal(await statOrNull(`${dir}/never-written`), null);
 * await Deno.remove(dir);
 * ```
 */
export async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * A path's own information (a link is not followed), or null when nothing is there — also when
 * a parent on the way is a file rather than a folder.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/file`, "x");
 * await Deno.symlink(`${dir}/file`, `${dir}/link`);
 * assert.equal((await lstatOrNull(`${dir}/link`))?.isSymlink, true);
 * assert.equal(await lstatOrNull(`${dir}/file/inside`), null);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}

/**
 * A text file's contents, or null when there is no such file. Any other error (a permission, a
 * folder where the file should be) is the caller's to see.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/digest`, "ab12\n");
 * assert.equal(await readTextOrNull(`${dir}/digest`), "ab12\n");
 * assert.equal(await readTextOrNull(`${dir}/never-written`), null);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readTextOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * The entries of a folder, or null when there is no such folder. Any other error (a
 * permission, a file where the folder should be) is the caller's to see.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.txt`, "");
 * assert.deepEqual((await readDirOrNull(dir))?.map((e) => e.name), ["a.txt"]);
 * assert.equal(await readDirOrNull(`${dir}/never-made`), null);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readDirOrNull(path: string): Promise<Deno.DirEntry[] | null> {
  try {
    return await Array.fromAsync(Deno.readDir(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * The first of `paths` that is a regular file this process may see, or undefined (a system
 * library looked for in its usual places).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/b.so`, "");
 * assert.equal(firstFileSync([`${dir}/a.so`, `${dir}/b.so`]), `${dir}/b.so`);
 * assert.equal(firstFileSync([`${dir}/a.so`]), undefined);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function firstFileSync(paths: readonly string[]): string | undefined {
  for (const path of paths) {
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch (e) {
      // Not there, or not ours to look at: try the next place.
      if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotCapable)) throw e;
    }
  }
  return undefined;
}

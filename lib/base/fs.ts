/**
 * File-system steps every layer takes the same way.
 *
 * @module
 */

/**
 * Removes a file or an empty folder; one that is already gone is what was wanted. Any other
 * error (a permission, a full folder) is the caller's to see.
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * await removeIfPresent(`${dir}/never-written`); // no error
 * await Deno.remove(dir);
 * ```
 */
export async function removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

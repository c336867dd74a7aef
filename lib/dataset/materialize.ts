/**
 * `download.materialize`: laying stored images out in the familiar tree
 * (`images1024x1024/00000/00042.png`) as hard links to the store's objects (copies across
 * filesystems). A file already at a target is replaced only when latentforge wrote it (a link
 * to one of its objects); a file holding the right bytes is left as it is; any other file —
 * the user's own — is never removed or overwritten: it is reported instead.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { unsafePathReason } from "./item_index.ts";
import { hashFile, type ObjectStore } from "../store/objects.ts";
import { removeIfPresent } from "../base/fs.ts";

/** A target left untouched, and why. */
export interface MaterializeConflict {
  path: string;
  why: string;
}

/** Raised for a relative path that cannot be laid out under the folder. */
export class MaterializeError extends Error {
  override readonly name = "MaterializeError";
}

/**
 * Lays the object `digest` out at `root/rel`; returns the conflict when a file latentforge did
 * not write is in the way (that file is left as it was), `null` otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const store = new ObjectStore(`${dir}/cache`);
 *   const digest = await store.put(new TextEncoder().encode("png bytes"));
 *   const rel = "images1024x1024/00000/00042.png";
 *   assert.equal(await materialize(store, digest, `${dir}/ffhq`, rel), null);
 *   assert.equal(await Deno.readTextFile(`${dir}/ffhq/${rel}`), "png bytes");
 *   // A file of the user's own in the way is left as it is, and reported.
 *   await Deno.writeTextFile(`${dir}/ffhq/mine.png`, "my bytes");
 *   const conflict = await materialize(store, digest, `${dir}/ffhq`, "mine.png");
 *   assert.match(conflict!.why, /holds other bytes/);
 *   assert.equal(await Deno.readTextFile(`${dir}/ffhq/mine.png`), "my bytes");
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function materialize(
  store: ObjectStore,
  digest: string,
  root: string,
  rel: string,
): Promise<MaterializeConflict | null> {
  const why = unsafePathReason(rel);
  if (why) {
    throw new MaterializeError(
      `download.materialize: cannot lay out ${JSON.stringify(rel)}: ${why}`,
    );
  }
  const target = join(root, rel);
  const object = store.path(digest);
  await Deno.mkdir(dirname(target), { recursive: true });
  const there = await Deno.lstat(target).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  });
  if (there === null) {
    await place(object, target);
    return null;
  }
  if (!there.isFile) return { path: target, why: "not a regular file" };
  if (await sameFile(object, there)) return null;
  const found = await hashFile(target);
  if (found === digest) return null;
  // A link to another object of the store is a file latentforge laid out earlier.
  if (
    (there.nlink ?? 0) > 1 && await store.has(found) && await sameFile(store.path(found), there)
  ) {
    await place(object, target);
    return null;
  }
  return { path: target, why: `holds other bytes (sha256 ${found.slice(0, 12)}…)` };
}

async function sameFile(path: string, info: Deno.FileInfo): Promise<boolean> {
  const other = await Deno.stat(path).catch((error) => {
    // An object that is not in the store is no file's twin.
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  });
  return other !== null && other.dev === info.dev && other.ino !== null &&
    other.ino === info.ino;
}

/** Puts a link (or a copy) beside the target and renames it over, so a reader never sees half. */
async function place(object: string, target: string): Promise<void> {
  const tmp = `${target}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.link(object, tmp);
  } catch (error) {
    // Across filesystems, or where the filesystem has no hard links, a copy holds the same bytes.
    if (!linkRefused(error)) throw error;
    await Deno.copyFile(object, tmp);
  }
  try {
    await Deno.rename(tmp, target);
  } catch (error) {
    await removeIfPresent(tmp);
    throw error;
  }
}

/** Errors of a hard link that a copy avoids: another filesystem, or no links there. */
function linkRefused(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.NotSupported ||
    ["EXDEV", "EPERM", "ENOTSUP", "EOPNOTSUPP", "EMLINK"].includes(code ?? "");
}

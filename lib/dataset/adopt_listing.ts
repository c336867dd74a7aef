/**
 * Listing the local copies `dataset.adopt` names: folders walked (symlinked folders followed
 * once each), `.zip` archives' directories read, macOS resource forks and Finder files left
 * out, and a fingerprint of the listing that changes when the copies do. Nothing in a copy is
 * ever changed.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import { ZipArchive, ZipArchiveError, type ZipEntry } from "./zip_archive.ts";

/** Raised when an adopt source cannot be opened (missing, unreadable, not a zip archive). */
export class AdoptSourceError extends Error {
  override readonly name = "AdoptSourceError";
}

/** One file of a local copy. */
export interface AdoptFile {
  /** How the user finds it: `/data/ffhq/images1024x1024/00000/00042.png`, `/data/ffhq.zip!00042.png`. */
  label: string;
  /** Its path inside the copy (`images1024x1024/00000/00042.png`, `00042.png`). */
  rel: string;
  /** Size in bytes as listed. */
  size: number;
  /** The file on disk, for a folder's file. */
  path?: string;
  /** The archive entry, for a zip's file. */
  entry?: ZipEntry;
  /** Index of the archive in the sources, for a zip's file. */
  zip?: number;
}

/** Every file of the copies, the archives opened for streaming, and the listing's fingerprint. */
export interface CopyListing {
  /** The sources as configured, resolved to absolute paths. */
  paths: string[];
  files: AdoptFile[];
  zips: ZipArchive[];
  /** sha256 of the listing (paths, sizes, modification times). */
  fingerprint: string;
}

/**
 * Lists the folders (recursively) and the archives' directories. A source that does not exist
 * or cannot be read fails with an {@link AdoptSourceError} naming it; `label` names the config
 * field in that message. The archives stay open: close them when done.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.mkdir(`${dir}/00000`);
 *   await Deno.writeFile(`${dir}/00000/00042.png`, new Uint8Array(3));
 *   await Deno.writeTextFile(`${dir}/.DS_Store`, "finder");
 *   const listing = await listCopies([dir]);
 *   assert.deepEqual(listing.files.map((f) => [f.rel, f.size]), [["00000/00042.png", 3]]);
 *   assert.equal(listing.fingerprint.length, 64);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function listCopies(
  sources: readonly string[],
  { label = "dataset.adopt" }: { label?: string } = {},
): Promise<CopyListing> {
  const paths = sources.map((p) => resolve(p));
  const files: AdoptFile[] = [];
  const zips: ZipArchive[] = [];
  const listing = createHash("sha256");
  try {
    for (const [i, path] of paths.entries()) {
      const info = await statSource(path, `${label}[${i}]`);
      listing.update(`source\t${path}\n`);
      if (info.isDirectory) {
        for await (const f of walk(path, path, new Set())) {
          files.push(f);
          listing.update(`${f.rel}\t${f.size}\t${f.mtime}\n`);
        }
        continue;
      }
      const zip = await openZip(path, `${label}[${i}]`);
      zips.push(zip);
      listing.update(`zip\t${info.size}\t${info.mtime?.getTime()}\n`);
      for (const entry of zip.entries) {
        if (ignored(entry.name)) continue;
        const where = { entry, zip: zips.length - 1 };
        files.push({ label: `${path}!${entry.name}`, rel: entry.name, size: entry.size, ...where });
      }
    }
  } catch (error) {
    for (const z of zips) z.close();
    throw error;
  }
  return { paths, files, zips, fingerprint: listing.digest("hex") };
}

async function statSource(path: string, field: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    throw new AdoptSourceError(
      `${field}: ${path}: ${
        error instanceof Deno.errors.NotFound
          ? "no such folder or .zip archive"
          : error instanceof Deno.errors.PermissionDenied
          ? "permission denied (adopting needs read access)"
          : "cannot be read"
      }`,
    );
  }
}

async function openZip(path: string, field: string): Promise<ZipArchive> {
  try {
    return await ZipArchive.open(path);
  } catch (error) {
    if (error instanceof ZipArchiveError) throw new AdoptSourceError(`${field}: ${error.message}`);
    throw error;
  }
}

/**
 * Checks, before anything runs, that every copy exists and can be read (a folder, or a file:
 * whether it is a zip archive is told when it is opened). Throws an {@link AdoptSourceError}
 * naming the first that cannot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await checkAdoptSources([dir]);
 *   await assert.rejects(checkAdoptSources([`${dir}/absent.zip`]), /no such folder or \.zip archive/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function checkAdoptSources(
  sources: readonly string[],
  { label = "dataset.adopt" }: { label?: string } = {},
): Promise<void> {
  for (const [i, source] of sources.entries()) {
    const path = resolve(source);
    const where = path === source ? path : `${source} (${path})`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (error) {
      throw new AdoptSourceError(
        `${label}[${i}]: ${where}: ${
          error instanceof Deno.errors.NotFound
            ? "no such folder or .zip archive"
            : "cannot be read (adopting needs read access)"
        }`,
      );
    }
    if (!info.isDirectory && !info.isFile) {
      throw new AdoptSourceError(`${label}[${i}]: ${where}: expected a folder or a .zip archive`);
    }
  }
}

/** macOS resource forks and Finder files are not part of any copy. */
function ignored(rel: string): boolean {
  const parts = rel.split("/");
  return parts.includes("__MACOSX") || parts.some((p) => p === ".DS_Store" || p.startsWith("._"));
}

interface Listed extends AdoptFile {
  mtime: number;
}

async function* walk(root: string, dir: string, seen: Set<string>): AsyncGenerator<Listed> {
  // Symlinked folders are followed once each, so a link loop cannot recurse forever.
  const real = await Deno.realPath(dir);
  if (seen.has(real)) return;
  seen.add(real);
  const entries = await Array.fromAsync(Deno.readDir(dir));
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const e of entries) {
    const path = join(dir, e.name);
    const rel = path.slice(root.length + 1);
    if (ignored(rel)) continue;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (error) {
      // A broken link, a link loop or an entry this run may not read holds no copy of any
      // item: it is passed over, as the items are then downloaded.
      if (unfollowable(error)) continue;
      throw error;
    }
    if (info.isDirectory) yield* walk(root, path, seen);
    else if (info.isFile) {
      yield { label: path, rel, size: info.size, path, mtime: info.mtime?.getTime() ?? 0 };
    }
  }
}

function unfollowable(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound || error instanceof Deno.errors.FilesystemLoop ||
    error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable ||
    /os error 40\b/.test(String(error));
}

/**
 * Which output folders latentforge may replace: only a folder it created (it holds a
 * `.latentforge.json` marker naming every file latentforge wrote there). An existing file, a
 * non-empty folder without a marker, or a marked folder holding files its marker does not name
 * is refused with {@link OutDirError}, before any work and again at publishing.
 *
 * @module
 */
import { dirname, join, relative, resolve } from "node:path";
import { lstatOrNull, readDirOrNull } from "../base/fs.ts";
import { MARKER, type OutMarker, readMarker } from "./out_marker.ts";
import { isOwnedTemp, withParentLock } from "./publish_lock.ts";

/** Raised when the output folder holds files latentforge did not write. */
export class OutDirError extends Error {
  override readonly name = "OutDirError";
  /** A bad invocation (exit code 2): nothing was done. */
  readonly exitCode = 2;
  /** The folder that was refused. */
  readonly dir: string;
  constructor(message: string, dir: string) {
    super(message);
    this.dir = dir;
  }
}

/**
 * Refuses (with {@link OutDirError}) an output folder latentforge may not replace: an
 * existing file, a non-empty folder without a marker, or a marked folder holding files its
 * marker does not name. Called before any work, and again at publishing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await checkOutDir(`${dir}/out`); // a folder not made yet is fine
 * await Deno.mkdir(`${dir}/out`);
 * await Deno.writeTextFile(`${dir}/out/thesis.tex`, "mine");
 * await assert.rejects(checkOutDir(`${dir}/out`), OutDirError);
 * assert.equal(await Deno.readTextFile(`${dir}/out/thesis.tex`), "mine");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkOutDir(dir: string): Promise<void> {
  const target = resolve(dir);
  if ((await lstatOrNull(target)) === null) return;
  // Under the lock: a publish swapping the folder in is never caught half-way.
  await withParentLock(target, () => checkOutDirLocked(target));
}

/**
 * {@link checkOutDir}, for a caller holding the parent's lock.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withParentLock } from "./publish_lock.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
 * await assert.rejects(withParentLock(dir, () => checkOutDirLocked(dir)), OutDirError);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkOutDirLocked(target: string): Promise<void> {
  const info = await lstatOrNull(target);
  if (info === null) return;
  if (!info.isDirectory) {
    throw new OutDirError(
      `package.out_dir ${target} is ${info.isSymlink ? "a symbolic link" : "a file"}, ` +
        `expected a folder latentforge creates: choose a new or empty folder`,
      target,
    );
  }
  const marker = await readMarker(target);
  const foreign = await foreignEntries(target, marker === "unreadable" ? null : marker);
  if (foreign.length === 0) return;
  const shown = foreign.slice(0, 5).join(", ") + (foreign.length > 5 ? ", …" : "");
  const count = `${foreign.length} entr${foreign.length === 1 ? "y" : "ies"}`;
  const why = marker === null
    ? `holds ${count} (${shown}) and no ${MARKER}, so latentforge did not create it`
    : marker === "unreadable"
    ? `holds a ${MARKER} latentforge cannot read and ${count} (${shown})`
    : `holds ${count} latentforge did not write (${shown})`;
  throw new OutDirError(
    `package.out_dir ${target} ${why}; latentforge replaces only folders it created and ` +
      `never deletes other files: choose a new or empty folder for package.out_dir, or move ` +
      `those files elsewhere`,
    target,
  );
}

/**
 * Entries under `dir` that the marker does not name (paths relative to `dir`). Temp files a
 * dead publisher left are not counted (they are removed when the folder is next written).
 */
async function foreignEntries(dir: string, marker: OutMarker | null): Promise<string[]> {
  const named = new Set(Object.keys(marker?.files ?? {}));
  const parents = new Set<string>();
  for (const rel of named) {
    for (let d = dirname(rel); d !== "." && d !== ""; d = dirname(d)) parents.add(d);
  }
  const out: string[] = [];
  const walk = async (path: string) => {
    const entries = await readDirOrNull(path);
    // Swapped away by another run meanwhile: what is not there is nobody's.
    if (entries === null) return;
    for (const e of entries) {
      const full = join(path, e.name);
      const rel = relative(dir, full);
      if (marker && rel === MARKER) continue;
      if (marker && isOwnedTemp(e.name)) continue;
      if (e.isDirectory && parents.has(rel)) await walk(full);
      else if (!(e.isFile && named.has(rel))) out.push(e.isDirectory ? `${rel}/` : rel);
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * Reading one directory for a folder listing: its entries in code-unit order of their names,
 * with one `stat` per regular file and no read, so that seeing that a million-image folder has
 * not changed costs about what `find -printf '%s %T@'` costs. Through the C library where it
 * can be used (libc_dir.ts), else through Deno's `readDirSync` and `lstatSync`; both give the
 * same entries.
 *
 * @module
 */
import { join } from "node:path";
import { type DirEntries, EntryKind, UnreadableDirError } from "./dir_entries.ts";
import { loadLibcDir } from "./libc_dir.ts";

/** Which way a directory is read (see the module documentation). */
export type DirReader = "auto" | "libc" | "deno";

/**
 * Reads directory `dir`: its entries (including names starting with a dot; not `.` and `..`)
 * sorted by name in code-unit order. `reader` picks the way (default `"auto"`: the C library
 * when it can be used and the run may read `dir`, else Deno); `"libc"` where it cannot be used
 * throws. A directory that cannot be opened throws {@link UnreadableDirError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EntryKind } from "./dir_entries.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/b.png`, "12345");
 *   await Deno.mkdir(`${dir}/a`);
 *   const entries = readDirEntries(dir);
 *   assert.deepEqual(entries.names, ["a", "b.png"]);
 *   assert.deepEqual([...entries.kinds], [EntryKind.Dir, EntryKind.File]);
 *   assert.equal(entries.size[1], 5);
 *   assert.deepEqual(readDirEntries(dir, "deno"), entries);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export function readDirEntries(dir: string, reader: DirReader = "auto"): DirEntries {
  const libc = reader === "deno" ? undefined : loadLibcDir();
  if (reader === "libc" && libc === undefined) {
    throw new Error("the C library's directory functions cannot be used in this process");
  }
  // Through FFI the run's read permission is not checked: ask it first, as Deno would.
  const useLibc = libc !== undefined &&
    (reader === "libc" ||
      Deno.permissions.querySync({ name: "read", path: dir }).state === "granted");
  return sorted(useLibc ? libc.read(dir) : readWithDeno(dir));
}

function readWithDeno(dir: string): DirEntries {
  let list: Deno.DirEntry[];
  try {
    list = [...Deno.readDirSync(dir)];
  } catch (e) {
    throw new UnreadableDirError(dir, describe(e));
  }
  const n = list.length;
  const out: DirEntries = {
    names: list.map((e) => e.name),
    kinds: new Uint8Array(n),
    size: new Float64Array(n),
    mtimeMs: new Float64Array(n),
    ino: new Float64Array(n),
    errors: new Map(),
  };
  for (let k = 0; k < n; k++) {
    const e = list[k];
    const kind = e.isSymlink
      ? EntryKind.Link
      : e.isDirectory
      ? EntryKind.Dir
      : e.isFile
      ? EntryKind.File
      : EntryKind.Other;
    out.kinds[k] = kind;
    if (kind !== EntryKind.File) continue;
    try {
      const info = Deno.lstatSync(join(dir, e.name));
      out.size[k] = info.size;
      out.mtimeMs[k] = info.mtime?.getTime() ?? 0;
      out.ino[k] = info.ino ?? 0;
    } catch (error) {
      out.errors.set(k, describe(error));
    }
  }
  return out;
}

/** The entries in code-unit order of their names (the order ids and `--limit` follow). */
function sorted(entries: DirEntries): DirEntries {
  const { names } = entries;
  const order = Array.from(names.keys()).sort((a, b) =>
    names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0
  );
  if (order.every((k, i) => k === i)) return entries;
  const errors = new Map<number, string>();
  order.forEach((k, i) => {
    const error = entries.errors.get(k);
    if (error !== undefined) errors.set(i, error);
  });
  return {
    names: order.map((k) => names[k]),
    kinds: Uint8Array.from(order, (k) => entries.kinds[k]),
    size: Float64Array.from(order, (k) => entries.size[k]),
    mtimeMs: Float64Array.from(order, (k) => entries.mtimeMs[k]),
    ino: Float64Array.from(order, (k) => entries.ino[k]),
    errors,
  };
}

function describe(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.NotCapable) return "outside the paths this run may read";
  if (error instanceof Deno.errors.NotFound) return "no such file or directory";
  if (error instanceof Deno.errors.NotADirectory) return "not a directory";
  return (error as Error)?.message ?? String(error);
}

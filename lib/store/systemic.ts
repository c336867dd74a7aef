/**
 * Systemic faults: a problem with the machine, not with an item — a full disk (including the
 * record database's "database or disk is full"), a read-only filesystem, a quota, an I/O error,
 * or a record database that cannot be opened or is damaged. Such a fault would fail every item
 * after it the same way, so the run stops at once with one message (exit code 3) naming the
 * path, what was found (e.g. the free space) and what to do; nothing is recorded as an item
 * failure, and the next run resumes where this one stopped.
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { formatBytes } from "../base/bytes.ts";

/** What kind of fault stopped the run. */
export type FaultKind = "disk-full" | "quota" | "read-only" | "io" | "store";

/** A fault of the machine or the store: stops the run with exit code 3. */
export class SystemicFault extends Error {
  override readonly name = "SystemicFault";
  readonly kind: FaultKind;
  /** The file or folder concerned. */
  readonly path: string;
  /** What was found there (e.g. "0 B free of 12 MB"). */
  readonly found: string;
  /** What the user can do about it. */
  readonly todo: string;
  /** The machine, not the input: exit code 3, and the next run resumes. */
  readonly exitCode = 3;
  constructor(
    kind: FaultKind,
    { path, found, todo, cause }: { path: string; found: string; todo: string; cause?: unknown },
  ) {
    super(`${HEADLINE[kind]} at ${path} (${found}): ${todo}`, { cause });
    this.kind = kind;
    this.path = path;
    this.found = found;
    this.todo = todo;
  }
}

const HEADLINE: Record<FaultKind, string> = {
  "disk-full": "the disk is full",
  quota: "the disk quota is used up",
  "read-only": "the filesystem is read-only",
  io: "the disk reported an input/output error",
  store: "the record database cannot be used",
};

const RESUME =
  "everything finished so far is kept, and the next run resumes where this one stopped";

/** Where to look when an error names no path of its own. */
export interface FaultContext {
  /** The cache directory (used when the error names no path). */
  cacheDir: string;
  /** The command's record database file. Default: `<cacheDir>/records.sqlite3`. */
  recordsFile?: string;
}

/**
 * The systemic fault an error is, or null for an ordinary error (which stays with its item).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const full = new Error("No space left on device (os error 28): write '/data/cache/tmp/x'");
 * const fault = systemicFault(full, { cacheDir: "/data/cache" });
 * assert.equal(fault?.kind, "disk-full");
 * assert.equal(fault?.exitCode, 3);
 * assert.equal(systemicFault(new Error("item 17: 404"), { cacheDir: "/data/cache" }), null);
 * ```
 */
export function systemicFault(e: unknown, context: FaultContext): SystemicFault | null {
  if (e instanceof SystemicFault) return e;
  if (!(e instanceof Error)) return null;
  const text = `${e.message}${e.cause instanceof Error ? ` ${e.cause.message}` : ""}`;
  const code = (e as { code?: string }).code ?? "";
  const records = context.recordsFile ?? resolve(context.cacheDir, "records.sqlite3");
  const path = pathIn(text) ?? context.cacheDir;
  if (code === "ENOSPC" || /No space left on device|os error 28\b/.test(text)) {
    return diskFull(path, e);
  }
  if (/database or disk is full/.test(text)) return diskFull(records, e);
  if (code === "EDQUOT" || /Disk quota exceeded|os error 122\b/.test(text)) {
    return new SystemicFault("quota", {
      path: resolve(path),
      found: freeSpace(path),
      todo:
        `free space within your quota (e.g. deno task gc) or use a --cache elsewhere; ${RESUME}`,
      cause: e,
    });
  }
  if (code === "EROFS" || /Read-only file system|os error 30\b/.test(text)) {
    return readOnly(path, e);
  }
  if (/attempt to write a readonly database/.test(text)) return readOnly(records, e);
  if (code === "EIO" || /Input\/output error|os error 5\)/.test(text)) {
    return new SystemicFault("io", {
      path: resolve(path),
      found: text,
      todo: `check the disk (dmesg, smartctl); then run deno task verify, which re-hashes every ` +
        `object; ${RESUME}`,
      cause: e,
    });
  }
  return null;
}

/**
 * Free and total space of the filesystem holding `path` (or its nearest existing parent),
 * e.g. "1.2 MB free of 12.6 MB"; "free space unknown" where the system cannot tell.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.match(freeSpace(Deno.cwd()), /^\d+(\.\d)? [KMGT]?B free of \d+(\.\d)? [KMGT]?B$/);
 * ```
 */
export function freeSpace(path: string): string {
  const bytes = freeBytes(path);
  if (bytes === null) return "free space unknown";
  return `${formatBytes(bytes.free)} free of ${formatBytes(bytes.total)}`;
}

/**
 * Bytes available to this user and the filesystem's size at `path` (or its nearest existing
 * parent), or null where the system cannot tell.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const space = freeBytes(`${Deno.cwd()}/a/folder/not/made/yet`); // its nearest parent's disk
 * assert.ok(space && space.free <= space.total);
 * ```
 */
export function freeBytes(path: string): { free: number; total: number } | null {
  let at = resolve(path);
  for (;;) {
    try {
      const s = statfsSync(at);
      return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
    } catch (e) {
      // Anything but a path not made yet (statfs not permitted, not supported): cannot tell.
      if ((e as { code?: string }).code !== "ENOENT") return null;
      // Not made yet: it will be on its nearest existing parent's filesystem.
      const up = dirname(at);
      if (up === at) return null;
      at = up;
    }
  }
}

function diskFull(path: string, cause: unknown): SystemicFault {
  return new SystemicFault("disk-full", {
    path: resolve(path),
    found: freeSpace(path),
    todo: `free some space on that disk (deno task gc deletes what no recent run needs) or ` +
      `point --cache at a larger disk, then run again; ${RESUME}`,
    cause,
  });
}

function readOnly(path: string, cause: unknown): SystemicFault {
  return new SystemicFault("read-only", {
    path: resolve(path),
    found: "a write was refused: the filesystem is mounted read-only",
    todo: `remount it read-write, or choose a writable --cache and package.out_dir; ${RESUME}`,
    cause,
  });
}

/** The path a Deno error names (`…(os error 28): writefile '/x/y'`), if any. */
function pathIn(text: string): string | null {
  const m = /\(os error \d+\):? \w+ '([^']+)'/.exec(text);
  return m ? m[1] : null;
}

/**
 * Checks of the record database file (`<cache>/records.sqlite3`) before it is opened, and the
 * message when it cannot be: a truncated, overwritten, emptied or deleted database is a
 * damaged store (exit code 3), never silently taken for a new cache — `verify --repair`
 * rebuilds it from the journal. The checks read 100 bytes and one `stat`, whatever the size.
 *
 * @module
 */
import { statOrNull } from "../base/fs.ts";
import { join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { journalFiles } from "./journal.ts";
import { SystemicFault, systemicFault } from "./systemic.ts";

/** The record database's file name inside a cache. */
export const RECORDS_FILE = "records.sqlite3";

const MAGIC = "SQLite format 3\0";

/**
 * Throws a {@link SystemicFault} (kind `store`) when the cache's record database is damaged:
 * empty or missing while the cache holds recorded work, not an SQLite file, or shorter than
 * its header says.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SystemicFault } from "./systemic.ts";
 *
 * const cache = await Deno.makeTempDir();
 * await checkRecordsFile(cache); // no database yet: one is made
 * await Deno.writeTextFile(`${cache}/records.sqlite3`, "not a database");
 * await assert.rejects(checkRecordsFile(cache), SystemicFault);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function checkRecordsFile(cacheDir: string): Promise<void> {
  const file = resolve(cacheDir, RECORDS_FILE);
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(file);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    const batches = (await journalFiles(join(cacheDir, "journal"))).length;
    if (batches > 0) {
      throw damaged(
        file,
        `missing, while journal/ holds ${batches} batch${batches > 1 ? "es" : ""} of records`,
        cacheDir,
      );
    }
    return;
  }
  if (!info.isFile) throw damaged(file, "not a file", cacheDir);
  if (info.size === 0) {
    // A database being created by another process at this moment is empty too, but then the
    // cache holds no recorded work yet.
    if (await hasRecordedWork(cacheDir)) throw damaged(file, "empty (0 bytes)", cacheDir);
    return;
  }
  const head = new Uint8Array(100);
  const handle = await Deno.open(file, { read: true });
  let got = 0;
  try {
    while (got < head.length) {
      const n = await handle.read(head.subarray(got));
      if (n === null) break;
      got += n;
    }
  } finally {
    handle.close();
  }
  const view = new DataView(head.buffer);
  if (got < 100 || new TextDecoder().decode(head.subarray(0, 16)) !== MAGIC) {
    throw damaged(
      file,
      `not an SQLite database (${info.size} bytes, its header overwritten)`,
      cacheDir,
    );
  }
  const raw = view.getUint16(16);
  const pageSize = raw === 1 ? 65536 : raw;
  const pages = view.getUint32(28);
  // The page count is valid when the change counter equals the version-valid-for number; with
  // a write-ahead log not yet folded in (a checkpoint cut short by a full disk), pages may live
  // in the log, and SQLite reads them from there.
  const wal = (await statOrNull(`${file}-wal`))?.size ?? 0;
  if (
    wal === 0 && view.getUint32(24) === view.getUint32(92) && pages > 0 &&
    info.size < pages * pageSize
  ) {
    throw damaged(
      file,
      `truncated: ${info.size} bytes, its header says ${pages * pageSize}`,
      cacheDir,
    );
  }
}

/**
 * The fault for an error `Deno.openKv` (or a read) raised on the record database: a damaged
 * database, or a systemic fault of the disk; null for anything else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const fault = recordsFault(new Error("file is not a database"), "/data/cache");
 * assert.equal(fault?.kind, "store");
 * assert.equal(recordsFault(new Error("item 17: 404"), "/data/cache"), null);
 * ```
 */
export function recordsFault(e: unknown, cacheDir: string): SystemicFault | null {
  const file = resolve(cacheDir, RECORDS_FILE);
  const text = e instanceof Error ? e.message : String(e);
  // SQLite's words for a damaged file, and what Deno KV says when a damaged page decodes to
  // rows that cannot be (e.g. "Invalid column type Null at index: 0, name: version").
  if (
    /database disk image is malformed|file is not a database|database corrupt|Invalid column type/
      .test(text)
  ) {
    return damaged(file, `damaged: ${text.replace(/^(Error|TypeError): /, "")}`, cacheDir);
  }
  const fault = systemicFault(e, { cacheDir, recordsFile: file });
  if (fault) return fault;
  if (/unable to open database file/.test(text)) {
    return new SystemicFault("store", {
      path: file,
      found: "SQLite cannot open it (is its folder writable, or the file locked by a network " +
        "filesystem?)",
      todo: "make the cache folder writable, or choose another --cache",
      cause: e,
    });
  }
  return null;
}

function damaged(file: string, found: string, cacheDir: string): SystemicFault {
  return new SystemicFault("store", {
    path: file,
    found,
    todo: `run "deno task verify --repair --cache ${resolve(cacheDir)}" to rebuild it from ` +
      `the journal (stored objects are kept; only work whose objects are gone reruns)`,
  });
}

async function hasRecordedWork(cacheDir: string): Promise<boolean> {
  if ((await journalFiles(join(cacheDir, "journal"))).length > 0) return true;
  try {
    for await (const shard of Deno.readDir(join(cacheDir, "objects"))) {
      if (shard.isDirectory) return true;
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return false;
}

/**
 * SQLite's own check of every page of the record database (`PRAGMA quick_check`): "ok", or
 * the problems it found. It reads the whole file (tens of ms per MB), so `verify` and `gc`
 * run it, not every command.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRecords } from "./records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * (await openRecords(cache)).close();
 * assert.deepEqual(checkRecordsPages(cache), []);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export function checkRecordsPages(cacheDir: string): string[] {
  const file = resolve(cacheDir, RECORDS_FILE);
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(file, { readOnly: true });
    const rows = db.prepare("PRAGMA quick_check").all() as { quick_check: string }[];
    const said = rows.map((r) => String(r.quick_check));
    return said.length === 1 && said[0] === "ok" ? [] : said.flatMap((s) => s.split("\n"));
  } catch (e) {
    // What SQLite says when it cannot check the file is what is wrong with it.
    if ((e as { code?: string }).code !== "ERR_SQLITE_ERROR") throw e;
    return [(e as Error).message];
  } finally {
    db?.close();
  }
}

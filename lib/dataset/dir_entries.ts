/**
 * One directory's entries, as a folder listing needs them: each entry's name and kind, and for
 * regular files their size, modification time (ms) and inode. They come as parallel arrays
 * rather than an object each, so that a listing of 1.3 million files holds numbers in typed
 * arrays and one string per name. read_dir.ts reads them.
 *
 * @module
 */

/** What an entry is (its `d_type`; links are not followed here). */
export const EntryKind = { File: 1, Dir: 2, Link: 3, Other: 4 } as const;

/** The entries of one directory; index `k` of every array describes the same entry. */
export interface DirEntries {
  names: string[];
  /** An {@link EntryKind} per entry. */
  kinds: Uint8Array;
  /** Bytes, for regular files (0 for other kinds). */
  size: Float64Array;
  /** Modification time in whole milliseconds since the epoch, for regular files. */
  mtimeMs: Float64Array;
  /** Inode number, for regular files. */
  ino: Float64Array;
  /** Why a regular file's `stat` failed (it vanished, or may not be read), by entry index. */
  errors: Map<number, string>;
}

/** Raised when a directory cannot be opened or read; `reason` is the system's word for it. */
export class UnreadableDirError extends Error {
  override readonly name = "UnreadableDirError";
  constructor(readonly dir: string, readonly reason: string) {
    super(`${dir}: ${reason}`);
  }
}

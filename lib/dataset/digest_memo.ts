/**
 * The digests an earlier listing computed, remembered with each file's size, modification time
 * and inode: a file whose three are unchanged is not read again, so listing an unchanged folder
 * of a million images costs a `stat` per file. A file renamed or moved inside the folder keeps
 * its inode, size and time and is found by them. The memo is an object in the store (a compact
 * binary table, not JSON: 1.3 million entries decode in a fraction of a second) that the
 * listing task records beside its index and finds again by an alias.
 *
 * Freshness by size and time is what `make`, rsync and git trust; what they miss (a file
 * rewritten within the same millisecond at the same size, a tool that restores the old time) is
 * caught when the file is read for a result, which checks its bytes against the digest. Like
 * git, a file modified less than {@link RACY_MS} before it was hashed is not trusted by its time
 * (another change within the clock's tick would keep size and time) and is hashed again next time.
 *
 * @module
 */
import { compareWalkOrder } from "./folder_walk.ts";

const FORMAT = "latentforge.listing-digests";
const VERSION = 1;

/** A file changed this close (ms) to the moment it was hashed is hashed again next time. */
export const RACY_MS = 2000;

/** Raised for memo bytes this version cannot read; the listing then reads every file. */
export class DigestMemoError extends Error {
  override readonly name = "DigestMemoError";
}

/** The files of a listing with their digests, in walk order (see folder_walk.ts). */
export interface MemoEntries {
  /** Path of each file, relative to what the listing names (its folder, or `<split>/`). */
  rels: string[];
  size: ArrayLike<number>;
  mtimeMs: ArrayLike<number>;
  ino: ArrayLike<number>;
  /** Hex MD5, or null for an entry that was not hashed (it has a problem). */
  md5: (string | null)[];
  /** When each digest was computed (ms since the epoch). */
  hashedAt: ArrayLike<number>;
}

/**
 * Remembered digests, looked up in walk order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const md5 = "0cc175b9c0f1b6a831c399e269772661";
 * const bytes = encodeDigestMemo({
 *   rels: ["a.png", "b.png"], size: [1, 2], mtimeMs: [1000, 1000], ino: [7, 8],
 *   md5: [md5, null], hashedAt: [9000, 9000],
 * });
 * const memo = DigestMemo.decode(bytes);
 * assert.equal(memo.lookup("a.png", 1, 1000, 7), md5);
 * assert.equal(memo.lookup("b.png", 2, 1000, 8), undefined); // never hashed
 * // Renamed: found by its inode, size and time.
 * assert.equal(DigestMemo.decode(bytes).lookup("c.png", 1, 1000, 7), md5);
 * ```
 */
export class DigestMemo {
  readonly #rels: string[];
  readonly #size: Float64Array;
  readonly #mtime: Float64Array;
  readonly #ino: Float64Array;
  readonly #md5: Uint8Array;
  #cursor = 0;
  #byIno?: Map<number, number[]>;

  private constructor(
    rels: string[],
    size: Float64Array,
    mtime: Float64Array,
    ino: Float64Array,
    md5: Uint8Array,
  ) {
    this.#rels = rels;
    this.#size = size;
    this.#mtime = mtime;
    this.#ino = ino;
    this.#md5 = md5;
  }

  /** A memo that remembers nothing (the first listing). */
  static empty(): DigestMemo {
    const none = new Float64Array(0);
    return new DigestMemo([], none, none, none, new Uint8Array(0));
  }

  /** Reads bytes {@link encodeDigestMemo} wrote; other bytes throw {@link DigestMemoError}. */
  static decode(bytes: Uint8Array): DigestMemo {
    const newline = bytes.indexOf(10);
    let header: { format?: string; version?: number; count?: number; names?: number };
    try {
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, Math.max(newline, 0))));
    } catch {
      header = {};
    }
    if (header.format !== FORMAT || header.version !== VERSION) {
      throw new DigestMemoError(
        `expected a listing memo (${FORMAT} version ${VERSION}), found ${
          JSON.stringify(new TextDecoder().decode(bytes.subarray(0, 60)))
        }`,
      );
    }
    const n = header.count!;
    let at = newline + 1;
    const names = new TextDecoder().decode(bytes.subarray(at, at + header.names!));
    const rels = n === 0 ? [] : names.split("\0").slice(0, n);
    at = align8(at + header.names!);
    const column = () => {
      const out = new Float64Array(bytes.slice(at, at + 8 * n).buffer);
      at += 8 * n;
      return out;
    };
    const [size, mtime, ino] = [column(), column(), column()];
    const md5 = bytes.slice(at, at + 16 * n);
    if (rels.length !== n || md5.length !== 16 * n) {
      throw new DigestMemoError(`a listing memo of ${n} entries is truncated`);
    }
    return new DigestMemo(rels, size, mtime, ino, md5);
  }

  /** How many files it remembers. */
  get size(): number {
    return this.#rels.length;
  }

  /**
   * The MD5 remembered for the file at `rel` when its size, modification time and inode are
   * the remembered ones — or, when `rel` is not remembered, for a remembered file with that
   * inode, size and time (the same file, renamed or moved). Calls in walk order cost a string
   * comparison each; out of order they still work, at the cost of a search.
   */
  lookup(rel: string, size: number, mtimeMs: number, ino: number): string | undefined {
    const rels = this.#rels;
    let j = this.#cursor;
    if (j < rels.length && compareWalkOrder(rels[j], rel) > 0) j = 0;
    while (j < rels.length && rels[j] !== rel && compareWalkOrder(rels[j], rel) < 0) j++;
    this.#cursor = j;
    if (j < rels.length && rels[j] === rel) {
      return this.#matches(j, size, mtimeMs, ino) ? this.#hex(j) : undefined;
    }
    for (const k of this.#inodes().get(ino) ?? []) {
      if (this.#matches(k, size, mtimeMs, ino)) return this.#hex(k);
    }
    return undefined;
  }

  #matches(k: number, size: number, mtimeMs: number, ino: number): boolean {
    return this.#size[k] === size && this.#mtime[k] === mtimeMs && this.#ino[k] === ino;
  }

  #inodes(): Map<number, number[]> {
    if (this.#byIno === undefined) {
      this.#byIno = new Map();
      for (let k = 0; k < this.#ino.length; k++) {
        const list = this.#byIno.get(this.#ino[k]);
        if (list) list.push(k);
        else this.#byIno.set(this.#ino[k], [k]);
      }
    }
    return this.#byIno;
  }

  #hex(k: number): string {
    let out = "";
    for (let i = 16 * k; i < 16 * k + 16; i++) out += HEX[this.#md5[i]];
    return out;
  }
}

/**
 * Encodes the entries that can be trusted next time: hashed, and not modified within
 * {@link RACY_MS} of being hashed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeDigestMemo({
 *   rels: ["a.png"], size: [1], mtimeMs: [5000], ino: [7],
 *   md5: ["0cc175b9c0f1b6a831c399e269772661"], hashedAt: [5500], // hashed 0.5 s after a change
 * });
 * assert.equal(DigestMemo.decode(bytes).size, 0);
 * ```
 */
export function encodeDigestMemo(entries: MemoEntries): Uint8Array {
  const kept: number[] = [];
  for (let k = 0; k < entries.rels.length; k++) {
    if (entries.md5[k] !== null && entries.mtimeMs[k] <= entries.hashedAt[k] - RACY_MS) {
      kept.push(k);
    }
  }
  const n = kept.length;
  const names = new TextEncoder().encode(kept.map((k) => entries.rels[k] + "\0").join(""));
  const header = new TextEncoder().encode(
    JSON.stringify({ format: FORMAT, version: VERSION, count: n, names: names.length }) + "\n",
  );
  const columns = align8(header.length + names.length);
  const out = new Uint8Array(columns + 24 * n + 16 * n);
  out.set(header);
  out.set(names, header.length);
  const numbers = new Float64Array(3 * n);
  kept.forEach((k, i) => {
    numbers[i] = entries.size[k];
    numbers[n + i] = entries.mtimeMs[k];
    numbers[2 * n + i] = entries.ino[k];
  });
  out.set(new Uint8Array(numbers.buffer), columns);
  const md5At = columns + 24 * n;
  kept.forEach((k, i) => {
    const hex = entries.md5[k]!;
    for (let b = 0; b < 16; b++) {
      out[md5At + 16 * i + b] = parseInt(hex.slice(2 * b, 2 * b + 2), 16);
    }
  });
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function align8(n: number): number {
  return (n + 7) & ~7;
}

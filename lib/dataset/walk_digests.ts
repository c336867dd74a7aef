/**
 * The MD5 of every file a walk found: the one an earlier listing remembered when the file's
 * size, time and inode are unchanged (digest_memo.ts), else read and hashed — a few files at a
 * time, so that reading overlaps hashing. What was read and what was reused is counted, for the
 * listing's log line, and every digest is gathered for the next listing's memo.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { DigestMemo, encodeDigestMemo, type MemoEntries } from "./digest_memo.ts";
import type { FolderWalk } from "./folder_walk.ts";

/** Files hashed at once. */
const CONCURRENT_READS = 4;
/** Files up to this size are read whole; larger ones are streamed. */
const WHOLE_READ = 4 << 20;

/** How many files a listing read and how many it found unchanged. */
export interface DigestCounts {
  hashed: number;
  reused: number;
}

/**
 * The digests of one listing (of one folder, or of every split of a class-folder dataset),
 * gathered for the next.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DigestMemo } from "./digest_memo.ts";
 * import { walkFolder } from "./folder_walk.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/a.png`, "a");
 *   await Deno.utime(`${dir}/a.png`, 1000, 1000); // old enough to be trusted by its time
 *   const walk = await walkFolder(dir, { isImage: () => true });
 *   const first = new WalkDigests(DigestMemo.empty());
 *   assert.deepEqual(await first.of(walk, dir), ["0cc175b9c0f1b6a831c399e269772661"]);
 *   const second = new WalkDigests(DigestMemo.decode(first.memo()));
 *   await second.of(walk, dir);
 *   assert.deepEqual(second.counts, { hashed: 0, reused: 1 });
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class WalkDigests {
  readonly counts: DigestCounts = { hashed: 0, reused: 0 };
  readonly #previous: DigestMemo;
  readonly #next: MemoEntries = {
    rels: [],
    size: [],
    mtimeMs: [],
    ino: [],
    md5: [],
    hashedAt: [],
  };
  readonly #startedAt = Date.now();

  constructor(previous: DigestMemo) {
    this.#previous = previous;
  }

  /**
   * The MD5 of each file of `walk` (null for an entry with a problem, an empty file, and one
   * `skip` names), whose files lie under `root`; `prefix` goes before each path in the memo
   * (`train/` for a split).
   */
  async of(
    walk: FolderWalk,
    root: string,
    { prefix = "", skip = () => false }: { prefix?: string; skip?: (k: number) => boolean } = {},
  ): Promise<(string | null)[]> {
    const n = walk.rels.length;
    const out: (string | null)[] = new Array(n).fill(null);
    const hashedAt = new Array<number>(n).fill(this.#startedAt);
    const misses: number[] = [];
    for (let k = 0; k < n; k++) {
      if (walk.problems.has(k) || walk.size[k] === 0 || skip(k)) continue;
      const known = this.#previous.lookup(
        prefix + walk.rels[k],
        walk.size[k],
        walk.mtimeMs[k],
        walk.ino[k],
      );
      // A remembered digest was trusted when it was made: it stays trusted.
      if (known !== undefined) {
        out[k] = known;
        hashedAt[k] = Infinity;
        this.counts.reused++;
      } else misses.push(k);
    }
    let next = 0;
    const worker = async () => {
      while (next < misses.length) {
        const k = misses[next++];
        out[k] = await md5OfFile(`${root}/${walk.rels[k]}`, walk.size[k]);
        hashedAt[k] = Date.now();
        this.counts.hashed++;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENT_READS }, worker));
    const memo = this.#next;
    for (let k = 0; k < n; k++) {
      (memo.rels as string[]).push(prefix + walk.rels[k]);
      (memo.size as number[]).push(walk.size[k]);
      (memo.mtimeMs as number[]).push(walk.mtimeMs[k]);
      (memo.ino as number[]).push(walk.ino[k]);
      memo.md5.push(out[k]);
      // Kept entries are trusted; a fresh digest is trusted once the file is old enough.
      (memo.hashedAt as number[]).push(hashedAt[k] === Infinity ? Infinity : hashedAt[k]);
    }
    return out;
  }

  /** The memo of every digest this listing found, for the next listing. */
  memo(): Uint8Array {
    return encodeDigestMemo(this.#next);
  }
}

/**
 * A file's MD5; `size` (what a `stat` said) picks reading it whole or streaming it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "a");
 * assert.equal(await md5OfFile(path, 1), "0cc175b9c0f1b6a831c399e269772661");
 * await Deno.remove(path);
 * ```
 */
export async function md5OfFile(path: string, size: number): Promise<string> {
  const hash = createHash("md5");
  if (size <= WHOLE_READ) return hash.update(await Deno.readFile(path)).digest("hex");
  using file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

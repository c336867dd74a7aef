/**
 * Reading one file of a local copy: its bytes hashed (MD5 and SHA-256) and, for a run, copied
 * to a temp file in the store while they are read, so what was verified is exactly what is
 * stored. A fault of the copy (unreadable, gone, a damaged zip entry) becomes a
 * {@link CopyReadError} that rejects the copy; a fault of the store is left as it is, since it
 * stops the run.
 *
 * @module
 */
import { concatBytes } from "../base/bytes.ts";
import { createHash } from "node:crypto";
import type { AdoptFile } from "./adopt_listing.ts";
import { ZipArchiveError } from "./zip_archive.ts";
import type { Digests, HashPool } from "../net/hash_pool.ts";

const BLOCK = 1 << 20;

/** A fault of the copy being read (not of the store being written): the copy is rejected. */
export class CopyReadError extends Error {
  override readonly name = "CopyReadError";
}

/** Where a copy's bytes come from and go to while it is hashed. */
export interface HashCopyOptions {
  /** The file's bytes (from disk, or out of its archive). */
  chunks: () => AsyncGenerator<Uint8Array>;
  /** Where the bytes read are also written; without it nothing is written (a plan). */
  keepAt?: string;
  hashPool?: HashPool;
}

/**
 * The size and digests of a copy's file, written to `keepAt` as it is read. A folder's file is
 * copied by the kernel and hashed from the page cache; a zip entry is streamed out of its
 * archive in blocks of up to 1 MiB.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * async function* entry() {
 *   yield new TextEncoder().encode("ab");
 *   yield new TextEncoder().encode("c");
 * }
 * const file = { label: "copy.zip!a.png", rel: "a.png", size: 3 };
 * const got = await hashCopy(file, { chunks: entry });
 * assert.equal(got.md5, "900150983cd24fb0d6963f7d28e17f72");
 * assert.equal(got.size, 3);
 * ```
 */
export async function hashCopy(
  file: AdoptFile,
  { chunks, keepAt, hashPool }: HashCopyOptions,
): Promise<Digests & { size: number }> {
  if (file.path) return await hashFolderFile(file.path, keepAt, hashPool);
  const session = hashPool?.begin();
  const md5 = session ? null : createHash("md5");
  const sha256 = session ? null : createHash("sha256");
  let size = 0;
  using out = keepAt ? await Deno.open(keepAt, { write: true, createNew: true }) : null;
  // Inflated data arrives in small pieces: they are gathered into blocks of up to 1 MiB, so
  // writes and hand-overs to the hashing thread stay few.
  let block = new Uint8Array(Math.min(BLOCK, Math.max(1, file.size)));
  let filled = 0;
  const flush = async () => {
    if (filled === 0) return;
    const full = block.subarray(0, filled);
    if (out) {
      let written = 0;
      while (written < full.length) written += await out.write(full.subarray(written));
    }
    if (session) {
      // The block's buffer moves to the hashing thread; the next block is a new one.
      session.update(full);
      block = new Uint8Array(block.length);
    } else {
      md5!.update(full);
      sha256!.update(full);
    }
    filled = 0;
  };
  try {
    for await (const chunk of readingCopy(chunks())) {
      size += chunk.length;
      let at = 0;
      while (at < chunk.length) {
        if (filled === block.length) {
          await flush();
          if (block.length < BLOCK) block = new Uint8Array(BLOCK);
        }
        const n = Math.min(chunk.length - at, block.length - filled);
        block.set(chunk.subarray(at, at + n), filled);
        filled += n;
        at += n;
      }
    }
    await flush();
  } catch (error) {
    session?.drop();
    throw error;
  }
  if (session) return { ...(await session.digest()), size };
  return { md5: md5!.digest("hex"), sha256: sha256!.digest("hex"), size };
}

/** A folder's file: the kernel copies it, and the copy (or the file itself) is hashed. */
async function hashFolderFile(
  path: string,
  keepAt: string | undefined,
  hashPool: HashPool | undefined,
): Promise<Digests & { size: number }> {
  const target = keepAt ?? path;
  if (keepAt) {
    try {
      await Deno.copyFile(path, keepAt);
    } catch (error) {
      // Whose fault: the copy's (unreadable, gone) or the store's (full, read-only)?
      await readable(path);
      throw error;
    }
  } else await readable(path);
  const size = (await Deno.stat(target)).size;
  if (hashPool) return { ...(await hashPool.begin(target, size).digest()), size };
  const md5 = createHash("md5");
  const sha256 = createHash("sha256");
  using handle = await Deno.open(target, { read: true });
  for await (const chunk of handle.readable) {
    md5.update(chunk);
    sha256.update(chunk);
  }
  return { md5: md5.digest("hex"), sha256: sha256.digest("hex"), size };
}

/**
 * All of a copy's bytes in one buffer (to decode a zip entry that was not kept on disk).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * async function* parts() {
 *   yield new Uint8Array([1, 2]);
 *   yield new Uint8Array([3]);
 * }
 * assert.deepEqual(await collectBytes(parts()), new Uint8Array([1, 2, 3]));
 * ```
 */
export async function collectBytes(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return concatBytes(parts);
}

function readFailure(error: unknown): CopyReadError {
  if (error instanceof ZipArchiveError) {
    return new CopyReadError(error.message.slice(error.message.indexOf(": ") + 2));
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new CopyReadError("cannot be read: permission denied");
  }
  if (error instanceof Deno.errors.NotFound) {
    return new CopyReadError("disappeared after the copy was listed");
  }
  return new CopyReadError(`cannot be read (${(error as Error)?.name ?? "error"})`);
}

/** Throws a {@link CopyReadError} unless the file can be opened and read. */
async function readable(path: string): Promise<void> {
  try {
    using f = await Deno.open(path, { read: true });
    await f.read(new Uint8Array(1));
  } catch (error) {
    throw readFailure(error);
  }
}

/** Passes a copy's chunks on, turning its read faults into {@link CopyReadError}s. */
async function* readingCopy(chunks: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    for (;;) {
      let step: IteratorResult<Uint8Array>;
      try {
        step = await chunks.next();
      } catch (error) {
        throw readFailure(error);
      }
      if (step.done) return;
      yield step.value;
    }
  } finally {
    // Closes the copy's file handle when the reader stops early (a write that failed).
    await chunks.return(undefined);
  }
}

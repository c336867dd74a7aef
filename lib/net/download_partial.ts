/**
 * The partial file of a download: where a transfer resumes, the hashing of the prefix already
 * on disk, and the checks a complete file passes (size, MD5, not an HTML page) before it is
 * accepted. A partial that can never become the expected file is discarded here, and only here.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { DownloadError } from "./download_error.ts";
import type { DownloadOptions, DownloadResult } from "./download.ts";
import type { Digests } from "./hash_pool.ts";
import { removeIfPresent } from "../base/fs.ts";

/** Text at the start of a body that says it is a web page, not the file. */
export const HTML_HEAD_RE = /^\s*(<!doctype html|<html|<head|<body|<\?xml[^>]*>\s*<html)/i;

/** Hashing of one file: on this thread, or in a `HashPool` worker. */
export interface Hasher {
  update(block: Uint8Array): void;
  digest(): Promise<Digests>;
  drop(): void;
}

/** Bytes in the partial file; none when it does not exist. */
export async function partialSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}

/** Where the next request starts: the partial's size, or 0 after discarding an overlong one. */
export async function resumePoint(partialPath: string, expectedSize?: number): Promise<number> {
  const have = await partialSize(partialPath);
  if (expectedSize !== undefined && have > expectedSize) {
    await removeIfPresent(partialPath);
    return 0;
  }
  return have;
}

/**
 * Where the body of a response goes in the partial file, given what the server sent: a 206
 * must start where the partial ends (else the partial is discarded), a 200 that ignored the
 * Range request starts over from byte 0.
 */
export async function resumeOffset(
  partialPath: string,
  have: number,
  body: { status: number; start: number },
  url: string,
  candidate: string,
): Promise<number> {
  if (body.status === 206 && body.start !== have) {
    await removeIfPresent(partialPath);
    throw new DownloadError(
      "http",
      `${url}: asked for bytes from ${have}, the server sent from ${body.start}; partial discarded`,
      { url: candidate },
    );
  }
  if (body.status === 200 && have > 0) {
    await removeIfPresent(partialPath);
    return 0;
  }
  return have;
}

/**
 * The server says the range starts past its end (HTTP 416): the partial is complete when it
 * holds exactly the server's size, and is discarded otherwise.
 */
export async function rangePastEnd(
  options: DownloadOptions,
  have: number,
  total: number,
  url: string,
  candidate: string,
): Promise<DownloadResult> {
  if (total === have) {
    return await acceptPartial(options, await (await startHasher(options, have)).digest(), {
      size: have,
      bytesFetched: 0,
      url: candidate,
    });
  }
  await removeIfPresent(options.partialPath);
  throw new DownloadError(
    "size",
    `${url}: the server has ${total} bytes but the partial file has ${have}; partial discarded`,
    { url: candidate },
  );
}

/**
 * A partial left by a previous run that already holds the expected number of bytes: accepted
 * when it passes the final checks, else `null` (and discarded by them).
 */
export async function completedEarlier(options: DownloadOptions): Promise<DownloadResult | null> {
  const { partialPath, expectedSize } = options;
  const have = await partialSize(partialPath);
  if (expectedSize !== undefined && have > expectedSize) {
    await removeIfPresent(partialPath);
    return null;
  }
  if (expectedSize === undefined || have !== expectedSize || have === 0) return null;
  // A previous run received every byte but stopped before the file was taken over.
  const digests = await (await startHasher(options, have)).digest();
  try {
    return await acceptPartial(options, digests, { size: have, bytesFetched: 0, url: null });
  } catch (error) {
    // The final checks discarded the partial: it is downloaded again from byte 0.
    if (!(error instanceof DownloadError)) throw error;
    return null;
  }
}

/** Starts hashing a file whose first `prefixBytes` are already in the partial file. */
export async function startHasher(
  options: Pick<DownloadOptions, "hashPool" | "partialPath">,
  prefixBytes: number,
): Promise<Hasher> {
  if (options.hashPool) return options.hashPool.begin(options.partialPath, prefixBytes);
  const md5 = createHash("md5");
  const sha256 = createHash("sha256");
  const hasher: Hasher = {
    update(block) {
      md5.update(block);
      sha256.update(block);
    },
    digest: () => Promise.resolve({ md5: md5.digest("hex"), sha256: sha256.digest("hex") }),
    drop() {},
  };
  if (prefixBytes > 0) {
    using file = await Deno.open(options.partialPath, { read: true });
    let left = prefixBytes;
    for await (const chunk of file.readable) {
      const part = chunk.subarray(0, Math.min(chunk.length, left));
      hasher.update(part);
      left -= part.length;
      if (left === 0) break;
    }
    if (left > 0) throw new Error(`${options.partialPath} is shorter than ${prefixBytes} bytes`);
  }
  return hasher;
}

/**
 * Accepts the complete partial file when its size and MD5 are the expected ones and it is not
 * an HTML page; otherwise discards it and throws. fsyncs it unless `options.fsync` is false.
 */
export async function acceptPartial(
  options: DownloadOptions,
  digests: Digests,
  got: { size: number; bytesFetched: number; url: string | null },
): Promise<DownloadResult> {
  const { partialPath, expectedSize, expectedMd5 } = options;
  const { size, bytesFetched, url } = got;
  const { md5, sha256 } = digests;
  const where = url ?? partialPath;
  const reject = async (kind: "size" | "md5" | "html", message: string) => {
    await removeIfPresent(partialPath);
    return new DownloadError(kind, `${where}: ${message}`, { url: url ?? undefined });
  };
  if (expectedSize !== undefined && size !== expectedSize) {
    throw await reject(
      "size",
      `expected ${expectedSize} bytes, found ${size}; partial file discarded`,
    );
  }
  if (expectedMd5 !== undefined && md5 !== expectedMd5) {
    throw await reject("md5", `expected MD5 ${expectedMd5}, found ${md5}; partial file discarded`);
  }
  // A file that matches its pinned MD5 is the file, whatever it looks like.
  if (expectedMd5 === undefined && HTML_HEAD_RE.test(await readHead(partialPath, 256))) {
    throw await reject("html", "received an HTML page instead of the file");
  }
  if (options.fsync ?? true) {
    using file = await Deno.open(partialPath, { read: true, write: true });
    await file.syncData();
  }
  return { path: partialPath, size, md5, sha256, bytesFetched, url };
}

async function readHead(path: string, n: number): Promise<string> {
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(n);
  const got = await file.read(buf);
  return new TextDecoder().decode(buf.subarray(0, got ?? 0));
}

/**
 * Verified, resumable HTTP downloads: a partial file kept between runs and resumed with HTTP
 * Range, MD5 and SHA-256 computed while streaming, stalls aborted, Google-Drive-style
 * interstitials followed, quota refusals reported to the host gate, and nothing accepted unless
 * its size and MD5 match.
 *
 * @module
 */

import { dirname } from "node:path";
import { classifyResponse } from "./download_classify.ts";
import { DownloadError } from "./download_error.ts";
import {
  acceptPartial,
  completedEarlier,
  type Hasher,
  rangePastEnd,
  resumeOffset,
  resumePoint,
  startHasher,
} from "./download_partial.ts";
import { streamToPartial, Transfer } from "./download_stream.ts";
import type { HashPool } from "./hash_pool.ts";
import { type HostGate, hostOf } from "./host_gate.ts";

/** Options of {@link downloadVerified}. */
export interface DownloadOptions {
  /** Candidate URLs, tried in order (mirrors first, then the source's own URL). */
  urls: string[];
  /**
   * The partial file: appended to only, kept between runs, resumed with a Range request. On
   * success it holds the complete verified file and its path is returned.
   */
  partialPath: string;
  /** Expected size in bytes; a longer partial is discarded, a different final size rejected. */
  expectedSize?: number;
  /** Expected MD5 (32 hex digits); the file is accepted only when it matches. */
  expectedMd5?: string;
  /** Abort and fail with a retryable `stall` error when no byte arrives for this long. Default 30,000. */
  stallMs?: number;
  /** Cancels the download; the partial file is kept for the next run. */
  signal?: AbortSignal;
  /** Per-host concurrency and quota back-off shared by all downloads of a run. Default: none. */
  hostGate?: HostGate;
  /** Called with the byte count of every chunk appended to the partial file. */
  onBytes?: (bytes: number) => void;
  /** Interstitial pages followed per URL before giving up. Default 3. */
  maxInterstitialHops?: number;
  /** fsync the complete file before returning, so a store can rename it durably. Default true. */
  fsync?: boolean;
  /** Worker threads for MD5/SHA-256, shared by a run's downloads. Default: hash on this thread. */
  hashPool?: HashPool;
  /**
   * Extra headers for the first request to a candidate URL (e.g. a Drive API key, which then
   * never has to be part of the URL). Default: none.
   */
  requestHeaders?: (url: string) => Record<string, string> | undefined;
}

/** What {@link downloadVerified} resolves with. */
export interface DownloadResult {
  /** The complete verified file (the partial path). */
  path: string;
  size: number;
  /** Lowercase hex MD5 of the whole file. */
  md5: string;
  /** Lowercase hex SHA-256 of the whole file. */
  sha256: string;
  /** Bytes received over the network by this call (a resumed prefix is not counted). */
  bytesFetched: number;
  /** The candidate URL that delivered the file; `null` when the partial was already complete. */
  url: string | null;
}

const MD5_RE = /^[0-9a-f]{32}$/;

/** Throws a non-retryable `bad_url` error unless `url` is an absolute http(s) URL. */
export function checkHttpUrl(url: string): URL {
  if (!URL.canParse(url)) {
    throw new DownloadError("bad_url", `not a valid URL: ${JSON.stringify(url)}`, { url });
  }
  const parsed = new URL(url);
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new DownloadError(
      "bad_url",
      `only http(s) URLs can be downloaded, found ${parsed.protocol} in ${JSON.stringify(url)}`,
      { url },
    );
  }
  return parsed;
}

/**
 * Downloads a file from the first candidate URL that delivers it, resuming `partialPath` with a
 * Range request, and resolves only when its size and MD5 match the expected ones. Failures throw
 * a {@link DownloadError}; `retryable` says whether calling again (for instance through
 * `retry`) can succeed. The partial file is append-only, so a killed process leaves a valid
 * prefix; a partial longer than expected or failing the final MD5 is discarded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HostGate } from "./host_gate.ts";
 * const body = new TextEncoder().encode("png bytes");
 * const server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   () => new Response(body),
 * );
 * const url = `http://127.0.0.1:${server.addr.port}/images1024x1024/00000/00017.png`;
 * const dir = await Deno.makeTempDir();
 * try {
 *   const got = await downloadVerified({
 *     urls: [url],
 *     partialPath: `${dir}/00017.png.part`,
 *     expectedSize: body.length,
 *     expectedMd5: "0".repeat(32),
 *     stallMs: 30_000,
 *     hostGate: new HostGate(),
 *   }).catch((error) => error);
 *   // Bytes that are not the expected ones are never accepted.
 *   assert.equal(got.kind, "md5");
 *   const ok = await downloadVerified({ urls: [url], partialPath: `${dir}/00017.png.part` });
 *   assert.equal(ok.size, body.length);
 *   assert.equal(await Deno.readTextFile(ok.path), "png bytes");
 * } finally {
 *   await server.shutdown();
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function downloadVerified(options: DownloadOptions): Promise<DownloadResult> {
  const { urls, partialPath, expectedSize, expectedMd5, signal, hostGate } = options;
  if (urls.length === 0) throw new DownloadError("bad_url", `no URL to download ${partialPath}`);
  for (const url of urls) checkHttpUrl(url);
  if (expectedMd5 !== undefined && !MD5_RE.test(expectedMd5)) {
    throw new DownloadError(
      "md5",
      `expected MD5 must be 32 lowercase hex digits, found ${JSON.stringify(expectedMd5)}`,
      { retryable: false },
    );
  }
  if (expectedSize !== undefined && !(Number.isSafeInteger(expectedSize) && expectedSize >= 0)) {
    throw new DownloadError("size", `expected size must be a byte count, found ${expectedSize}`, {
      retryable: false,
    });
  }
  signal?.throwIfAborted();
  await Deno.mkdir(dirname(partialPath), { recursive: true });

  const earlier = await completedEarlier(options);
  if (earlier) return earlier;

  // Hosts already backed off go last, so a mirror that is refusing does not hold up the others.
  const ordered = hostGate
    ? [...urls].sort((a, b) =>
      Number(hostGate.backoffRemainingMs(hostOf(a)) > 0) -
      Number(hostGate.backoffRemainingMs(hostOf(b)) > 0)
    )
    : urls;
  const failures: DownloadError[] = [];
  for (const [i, url] of ordered.entries()) {
    try {
      return await downloadFrom(url, options, i < ordered.length - 1);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!(error instanceof DownloadError)) throw error;
      failures.push(error);
    }
  }
  throw combine(failures, partialPath);
}

function combine(failures: DownloadError[], partialPath: string): DownloadError {
  if (failures.length === 1) return failures[0];
  const chosen = failures.find((f) => f.retryable && f.kind !== "quota") ??
    failures.find((f) => f.retryable) ?? failures[0];
  const detail = failures.map((f) => f.message).join("; ");
  return new DownloadError(
    chosen.kind,
    `all ${failures.length} URLs failed for ${partialPath}: ${detail}`,
    { url: chosen.url, host: chosen.host, retryable: chosen.retryable, cause: chosen },
  );
}

async function downloadFrom(
  candidate: string,
  options: DownloadOptions,
  othersLeft: boolean,
): Promise<DownloadResult> {
  const { hostGate, signal } = options;
  const host = hostOf(candidate);
  let release = () => {};
  if (hostGate) {
    // While other candidates remain, a backed-off host is passed over rather than waited for.
    const admitted = othersLeft
      ? await hostGate.acquireUnlessBackedOff(host, signal)
      : await hostGate.acquire(host, signal);
    if (!admitted) {
      throw new DownloadError(
        "quota",
        `${candidate}: host ${host} is backed off for another ${
          Math.ceil(hostGate.backoffRemainingMs(host) / 1000)
        } s after a quota refusal`,
        { url: candidate, host },
      );
    }
    release = admitted;
  }
  try {
    const result = await fetchWithHops(candidate, host, options);
    hostGate?.reportSuccess(host);
    return result;
  } finally {
    release();
  }
}

async function fetchWithHops(
  candidate: string,
  host: string,
  options: DownloadOptions,
): Promise<DownloadResult> {
  const maxHops = options.maxInterstitialHops ?? 3;
  let url = candidate;
  let cookie = "";
  for (let hop = 0;; hop++) {
    const extra = hop === 0 ? options.requestHeaders?.(candidate) : undefined;
    const outcome = await fetchOnce(url, candidate, host, cookie, options, extra);
    if (outcome.kind === "done") return outcome.result;
    if (hop >= maxHops) {
      throw new DownloadError(
        "html",
        `${candidate}: still an interstitial page after following ${maxHops} links`,
        { url: candidate },
      );
    }
    url = checkHttpUrl(outcome.next).href;
    cookie = outcome.cookie || cookie;
  }
}

type Outcome = { kind: "done"; result: DownloadResult } | {
  kind: "follow";
  next: string;
  cookie: string;
};

/**
 * One request: resume from the partial file, classify the response, and stream its body to
 * disk. Resolves with the verified file, or with the link an interstitial page points to.
 */
async function fetchOnce(
  url: string,
  candidate: string,
  host: string,
  cookie: string,
  options: DownloadOptions,
  extraHeaders?: Record<string, string>,
): Promise<Outcome> {
  const { partialPath, expectedSize } = options;
  const at = { url, candidate, have: await resumePoint(partialPath, expectedSize) };
  const transfer = new Transfer(options.stallMs ?? 30_000, options.signal);
  let hasher: Hasher | undefined;
  try {
    const headers: Record<string, string> = { ...extraHeaders };
    if (at.have > 0) headers["range"] = `bytes=${at.have}-`;
    if (cookie) headers["cookie"] = cookie;
    const response = await fetch(url, { headers, signal: transfer.signal, redirect: "follow" });
    transfer.watch.kick();
    transfer.hold(response.body);
    const asked = {
      url,
      candidate,
      host,
      have: at.have,
      expectedSize,
      expectedMd5: options.expectedMd5,
      hostGate: options.hostGate,
    };
    const got = await classifyResponse(response, asked, transfer.watch, (r) => transfer.hold(r));
    if (got.kind === "follow") return got;
    if (got.kind === "past_end") {
      return {
        kind: "done",
        result: await rangePastEnd(options, at.have, got.total, url, candidate),
      };
    }
    at.have = await resumeOffset(partialPath, at.have, got, url, candidate);
    hasher = await startHasher(options, at.have);
    const fetched = await streamToPartial({
      ...got,
      partialPath,
      expectedSize,
      hasher,
      ownsBlocks: options.hashPool !== undefined,
      watch: transfer.watch,
      onBytes: options.onBytes,
    }, at);
    transfer.release();
    const digests = await hasher.digest();
    hasher = undefined;
    const result = await acceptPartial(options, digests, {
      size: at.have,
      bytesFetched: fetched,
      url: candidate,
    });
    return { kind: "done", result };
  } catch (error) {
    throw transfer.failure(error, at);
  } finally {
    hasher?.drop();
    await transfer.close();
  }
}

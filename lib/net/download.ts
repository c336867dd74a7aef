/**
 * Verified, resumable HTTP downloads: a partial file kept between runs and resumed with HTTP
 * Range, MD5 and SHA-256 computed while streaming, stalls aborted, Google-Drive-style
 * interstitials followed, quota refusals reported to the host gate, and nothing accepted unless
 * its size and MD5 match.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { DownloadError } from "./download_error.ts";
import type { Digests, HashPool } from "./hash_pool.ts";
import { driveRefusal } from "./drive_api.ts";
import { HostGate, hostOf } from "./host_gate.ts";
import { removeIfPresent } from "../base/fs.ts";

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
const HTML_HEAD_RE = /^\s*(<!doctype html|<html|<head|<body|<\?xml[^>]*>\s*<html)/i;
const QUOTA_RE = /quota exceeded|too many users have viewed or downloaded this file/i;
const HTML_CAP = 2 * 1024 * 1024;
const WRITE_BLOCK = 256 * 1024;

/** Throws a non-retryable `bad_url` error unless `url` is an absolute http(s) URL. */
export function checkHttpUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DownloadError("bad_url", `not a valid URL: ${JSON.stringify(url)}`, { url });
  }
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
 * import { HostGate } from "./host_gate.ts";
 * const gate = new HostGate();
 * const got = await downloadVerified({
 *   urls: ["https://mirror.example/images1024x1024/00000/00000.png"],
 *   partialPath: "cache/partial/00000.png.part",
 *   expectedSize: 1_488_194,
 *   expectedMd5: "ddeaeea6ce59569643715759d537fd1b",
 *   stallMs: 30_000,
 *   hostGate: gate,
 * });
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

  const have = await fileSize(partialPath);
  if (expectedSize !== undefined && have > expectedSize) {
    await removeIfPresent(partialPath);
  } else if (expectedSize !== undefined && have === expectedSize && have > 0) {
    // A previous run received every byte but stopped before the file was taken over.
    const digests = await (await startHasher(options, have)).digest();
    try {
      return await finish(options, digests, have, 0, null);
    } catch (error) {
      if (!(error instanceof DownloadError)) throw error;
    }
  }

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

/** Hashing of one file: on this thread, or in a {@link HashPool} worker. */
interface Hasher {
  update(block: Uint8Array): void;
  digest(): Promise<Digests>;
  drop(): void;
}

/** Starts hashing a file whose first `prefixBytes` are already in the partial file. */
async function startHasher(options: DownloadOptions, prefixBytes: number): Promise<Hasher> {
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

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  }
}

async function readHead(path: string, n: number): Promise<string> {
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(n);
  const got = await file.read(buf);
  return new TextDecoder().decode(buf.subarray(0, got ?? 0));
}

async function finish(
  options: DownloadOptions,
  digests: Digests,
  size: number,
  bytesFetched: number,
  url: string | null,
): Promise<DownloadResult> {
  const { partialPath, expectedSize, expectedMd5 } = options;
  const { md5, sha256 } = digests;
  const where = url ?? partialPath;
  if (expectedSize !== undefined && size !== expectedSize) {
    await removeIfPresent(partialPath);
    throw new DownloadError(
      "size",
      `${where}: expected ${expectedSize} bytes, found ${size}; partial file discarded`,
      { url: url ?? undefined },
    );
  }
  if (expectedMd5 !== undefined && md5 !== expectedMd5) {
    await removeIfPresent(partialPath);
    throw new DownloadError(
      "md5",
      `${where}: expected MD5 ${expectedMd5}, found ${md5}; partial file discarded`,
      { url: url ?? undefined },
    );
  }
  if (HTML_HEAD_RE.test(await readHead(partialPath, 256))) {
    await removeIfPresent(partialPath);
    throw new DownloadError("html", `${where}: received an HTML page instead of the file`, {
      url: url ?? undefined,
    });
  }
  if (options.fsync ?? true) {
    using file = await Deno.open(partialPath, { read: true, write: true });
    await file.syncData();
  }
  return { path: partialPath, size, md5, sha256, bytesFetched, url };
}

/**
 * Fires `onStall` when `kick` has not been called for `ms`. Reads go through `read`, which also
 * rejects on a stall: aborting the fetch alone does not always wake a read that is waiting on a
 * silent connection.
 */
class StallWatch {
  #last = performance.now();
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #fired: Promise<never>;
  constructor(ms: number, onStall: () => void) {
    let fire!: (e: Error) => void;
    this.#fired = new Promise<never>((_, reject) => (fire = reject));
    this.#fired.catch(() => {});
    const period = Math.max(5, Math.min(1000, ms / 4));
    this.#timer = setInterval(() => {
      if (performance.now() - this.#last >= ms) {
        clearInterval(this.#timer);
        onStall();
        fire(new Error("stalled"));
      }
    }, period);
  }
  kick(): void {
    this.#last = performance.now();
  }
  async read(
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<ReadableStreamReadResult<Uint8Array>> {
    const result = await Promise.race([reader.read(), this.#fired]);
    this.kick();
    return result;
  }
  stop(): void {
    clearInterval(this.#timer);
  }
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

async function fetchOnce(
  url: string,
  candidate: string,
  host: string,
  cookie: string,
  options: DownloadOptions,
  extraHeaders?: Record<string, string>,
): Promise<Outcome> {
  const { partialPath, expectedSize, signal, hostGate, onBytes } = options;
  const stallMs = options.stallMs ?? 30_000;
  let have = await fileSize(partialPath);
  if (expectedSize !== undefined && have > expectedSize) {
    await removeIfPresent(partialPath);
    have = 0;
  }
  const controller = new AbortController();
  let stalled = false;
  const onAbort = () => controller.abort(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  const watch = new StallWatch(stallMs, () => {
    stalled = true;
    controller.abort(new Error("stalled"));
  });
  let file: Deno.FsFile | undefined;
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let finished = false;
  let bytesFetched = 0;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  let hasher: Hasher | undefined;
  const failure = (error: unknown): DownloadError | unknown => {
    if (signal?.aborted) return signal.reason;
    if (stalled) {
      return new DownloadError(
        "stall",
        `${url}: no byte received for ${stallMs} ms (after ${have} bytes); partial kept`,
        { url: candidate },
      );
    }
    if (error instanceof DownloadError) return error;
    return new DownloadError(
      "reset",
      `${url}: connection failed after ${have} bytes: ${(error as Error)?.message ?? error}`,
      { url: candidate, cause: error },
    );
  };
  try {
    const headers: Record<string, string> = { ...extraHeaders };
    if (have > 0) headers["range"] = `bytes=${have}-`;
    if (cookie) headers["cookie"] = cookie;
    const response = await fetch(url, { headers, signal: controller.signal, redirect: "follow" });
    watch.kick();
    const status = response.status;
    const contentType = response.headers.get("content-type") ?? "";

    if (status === 429) {
      response.body?.cancel().catch(() => {});
      const ms = hostGate?.reportQuota(host);
      throw new DownloadError(
        "quota",
        `${url}: HTTP 429 Too Many Requests from ${host}` +
          (ms !== undefined ? `; host backed off for ${Math.round(ms / 1000)} s` : ""),
        { url: candidate, host },
      );
    }
    if (status === 404 || status === 410) {
      response.body?.cancel().catch(() => {});
      throw new DownloadError("not_found", `${url}: HTTP ${status} (not on the server)`, {
        url: candidate,
      });
    }
    if (status === 416 && have > 0) {
      response.body?.cancel().catch(() => {});
      const total = Number(/\*\/(\d+)/.exec(response.headers.get("content-range") ?? "")?.[1]);
      if (total === have) {
        return {
          kind: "done",
          result: await finish(
            options,
            await (await startHasher(options, have)).digest(),
            have,
            0,
            candidate,
          ),
        };
      }
      await removeIfPresent(partialPath);
      throw new DownloadError(
        "size",
        `${url}: the server has ${total} bytes but the partial file has ${have}; partial discarded`,
        { url: candidate },
      );
    }
    if (status >= 400 || (status !== 200 && status !== 206)) {
      const readable = contentType.includes("html") || contentType.includes("json");
      const text = readable ? await readText(response, watch) : "";
      if (!readable) response.body?.cancel().catch(() => {});
      if (QUOTA_RE.test(text)) throw quotaPage(url, candidate, host, status, hostGate);
      // A Drive API error reply: quota and rate limits back the host off like a quota page.
      const refusal = contentType.includes("json") ? driveRefusal(status, text) : null;
      if (refusal?.quota) {
        const ms = hostGate?.reportQuota(host);
        throw new DownloadError(
          "quota",
          `${url}: ${refusal.text} (HTTP ${status} ${refusal.reason} from ${host})` +
            (ms !== undefined ? `; host backed off for ${Math.round(ms / 1000)} s` : ""),
          { url: candidate, host },
        );
      }
      if (refusal) {
        throw new DownloadError(
          "http",
          `${url}: ${refusal.text} (HTTP ${status} ${refusal.reason})`,
          {
            url: candidate,
            retryable: status >= 500 || status === 408,
          },
        );
      }
      throw new DownloadError("http", `${url}: HTTP ${status} ${response.statusText}`, {
        url: candidate,
        retryable: status >= 500 || status === 408,
      });
    }

    reader = response.body!.getReader();
    let first = await watch.read(reader);
    const sniffHtml = status === 200 && !first.done && looksLikeHtml(first.value);
    if (contentType.includes("text/html") || sniffHtml) {
      const text = await readText(response, watch, reader, first.done ? undefined : first.value);
      if (QUOTA_RE.test(text)) throw quotaPage(url, candidate, host, status, hostGate);
      const next = interstitialLink(text, response.url || url);
      if (next) {
        return { kind: "follow", next, cookie: cookieOf(response) };
      }
      throw new DownloadError(
        "html",
        `${url}: received an HTML page (HTTP ${status}, ${text.length} characters) instead of the file`,
        { url: candidate },
      );
    }

    let start = 0;
    let total: number | undefined;
    if (status === 206) {
      const m = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(response.headers.get("content-range") ?? "");
      if (!m) {
        reader.cancel().catch(() => {});
        throw new DownloadError("http", `${url}: HTTP 206 without a usable Content-Range`, {
          url: candidate,
        });
      }
      start = Number(m[1]);
      total = m[3] === "*" ? undefined : Number(m[3]);
      if (start !== have) {
        reader.cancel().catch(() => {});
        await removeIfPresent(partialPath);
        throw new DownloadError(
          "http",
          `${url}: asked for bytes from ${have}, the server sent from ${start}; partial discarded`,
          { url: candidate },
        );
      }
    } else {
      const length = response.headers.get("content-length");
      total = length === null ? undefined : Number(length);
    }
    if (expectedSize !== undefined && total !== undefined && total !== expectedSize) {
      reader.cancel().catch(() => {});
      throw new DownloadError(
        "size",
        `${url}: the server announces ${total} bytes, expected ${expectedSize}`,
        { url: candidate },
      );
    }

    if (status === 200 && have > 0) {
      // The server ignored the Range request: start over from byte 0.
      await removeIfPresent(partialPath);
      have = 0;
    }
    hasher = await startHasher(options, have);
    const pooled = options.hashPool !== undefined;
    file = await Deno.open(partialPath, { append: true, create: true });
    // Small network chunks are gathered into larger appends: fewer syscalls, same bytes in order.
    const flush = async () => {
      if (pendingBytes === 0) return;
      // A pooled hasher takes ownership of the block's buffer, so it gets a fresh copy.
      const block = pending.length === 1 && !pooled ? pending[0] : concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await writeAll(file!, block);
      hasher!.update(block);
    };
    while (!first.done) {
      const chunk = first.value;
      have += chunk.length;
      bytesFetched += chunk.length;
      onBytes?.(chunk.length);
      if (expectedSize !== undefined && have > expectedSize) {
        reader.cancel().catch(() => {});
        pending = [];
        pendingBytes = 0;
        file.close();
        file = undefined;
        await removeIfPresent(partialPath);
        throw new DownloadError(
          "size",
          `${url}: received more than the expected ${expectedSize} bytes; partial discarded`,
          { url: candidate },
        );
      }
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= WRITE_BLOCK) await flush();
      first = await watch.read(reader);
    }
    await flush();
    finished = true;
    file.close();
    file = undefined;
    const want = total ?? expectedSize;
    if (want !== undefined && have < want) {
      throw new DownloadError(
        "truncated",
        `${url}: the body ended at byte ${have} of ${want}; partial kept for resuming`,
        { url: candidate },
      );
    }
    const digests = await hasher.digest();
    hasher = undefined;
    return { kind: "done", result: await finish(options, digests, have, bytesFetched, candidate) };
  } catch (error) {
    throw failure(error);
  } finally {
    watch.stop();
    signal?.removeEventListener("abort", onAbort);
    if (file && pendingBytes > 0) {
      // Keep what arrived before the failure, so the next attempt resumes after it.
      await writeAll(file, concat(pending, pendingBytes)).catch(() => {});
    }
    file?.close();
    hasher?.drop();
    if (reader && !finished) reader.cancel().catch(() => {});
  }
}

function quotaPage(
  url: string,
  candidate: string,
  host: string,
  status: number,
  gate?: HostGate,
): DownloadError {
  const ms = gate?.reportQuota(host);
  return new DownloadError(
    "quota",
    `${url}: "Quota exceeded" page (HTTP ${status}) from ${host}` +
      (ms !== undefined ? `; host backed off for ${Math.round(ms / 1000)} s` : ""),
    { url: candidate, host },
  );
}

function concat(parts: Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}

function looksLikeHtml(bytes: Uint8Array): boolean {
  return HTML_HEAD_RE.test(new TextDecoder().decode(bytes.subarray(0, 256)));
}

async function readText(
  response: Response,
  watch: StallWatch,
  reader?: ReadableStreamDefaultReader<Uint8Array>,
  first?: Uint8Array,
): Promise<string> {
  const r = reader ?? response.body?.getReader();
  if (!r) return "";
  const parts: Uint8Array[] = first ? [first] : [];
  let n = first?.length ?? 0;
  while (n < HTML_CAP) {
    const { done, value } = await watch.read(r);
    if (done) break;
    parts.push(value);
    n += value.length;
  }
  if (n >= HTML_CAP) await r.cancel();
  const all = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    all.set(p.subarray(0, n - o), o);
    o += p.length;
  }
  return new TextDecoder().decode(all);
}

function cookieOf(response: Response): string {
  return response.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
}

function unescapeHtml(s: string): string {
  return s.replaceAll("&amp;", "&").replaceAll("&#39;", "'").replaceAll("&quot;", '"')
    .replace(/\\u003d/gi, "=").replace(/\\u0026/gi, "&");
}

/**
 * Finds where a Google-Drive-style "can't scan this file for viruses" page sends the user: a
 * form with hidden fields, a link with `export=download`, or a bare `confirm=` token.
 */
function interstitialLink(html: string, base: string): string | null {
  const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (form) {
    const action = new URL(unescapeHtml(form[1]), base);
    const inputs = form[2].matchAll(/<input[^>]*>/gi);
    let hasField = false;
    for (const [tag] of inputs) {
      const name = /name="([^"]*)"/i.exec(tag)?.[1];
      const value = /value="([^"]*)"/i.exec(tag)?.[1] ?? "";
      if (name && /type="hidden"/i.test(tag)) {
        action.searchParams.set(name, unescapeHtml(value));
        hasField = true;
      }
    }
    if (hasField && (action.searchParams.has("confirm") || action.searchParams.has("export"))) {
      return action.href;
    }
  }
  const link = /href="([^"]*export=download[^"]*)"/i.exec(html);
  if (link) return new URL(unescapeHtml(link[1]), base).href;
  const token = /confirm=([0-9A-Za-z_-]+)/.exec(html);
  if (token) {
    const next = new URL(base);
    next.searchParams.set("confirm", token[1]);
    return next.href;
  }
  return null;
}

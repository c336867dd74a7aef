/**
 * What a download response is: a refusal (quota, rate limit, not found, another HTTP error), a
 * Google-Drive-style interstitial page to follow, an HTML page where the file was expected, a
 * range past the end of the file, or the file's body with the range it covers.
 *
 * A file pinned by size and MD5 is the file whatever it looks like: a body of the pinned size
 * is taken as the file (its MD5 is checked when it is complete), and so is a page whose bytes
 * have the pinned size and MD5 — never mistaken for a quota or an interstitial page.
 *
 * @module
 */
import { createHash } from "node:crypto";

import { DownloadError } from "./download_error.ts";
import { HTML_HEAD_RE } from "./download_partial.ts";
import type { StallWatch } from "./download_stream.ts";
import { driveRefusal } from "./drive_api.ts";
import type { HostGate } from "./host_gate.ts";

const QUOTA_RE = /quota exceeded|too many users have viewed or downloaded this file/i;
/** An error page or interstitial is read up to this many bytes. */
const HTML_CAP = 2 * 1024 * 1024;

/** The request a response answers. */
export interface Asked {
  /** The URL requested (after interstitial hops). */
  url: string;
  /** The candidate URL it came from, which errors name as theirs. */
  candidate: string;
  host: string;
  /** The byte the request asked to start from (0 without a Range header). */
  have: number;
  expectedSize?: number;
  /** The pinned MD5: with `expectedSize`, a body of that size and MD5 is the file. */
  expectedMd5?: string;
  hostGate?: HostGate;
}

/** What a response turned out to be, when it is not a refusal. */
export type Classified =
  | { kind: "past_end"; total: number }
  | { kind: "follow"; next: string; cookie: string }
  | {
    kind: "body";
    status: number;
    reader: ReadableStreamDefaultReader<Uint8Array>;
    first: ReadableStreamReadResult<Uint8Array>;
    /** The byte the body starts at. */
    start: number;
    /** The size of the whole file, when the response says it. */
    total?: number;
  };

/**
 * Classifies a response; a refusal throws its {@link DownloadError} (quota refusals back the host
 * off in `asked.hostGate`). `hold` is told of the reader once the body is being read, so the
 * caller can give it up if anything fails later.
 */
export async function classifyResponse(
  response: Response,
  asked: Asked,
  watch: StallWatch,
  hold: (reader: ReadableStreamDefaultReader<Uint8Array>) => void,
): Promise<Classified> {
  const { status } = response;
  if (status === 429) throw quotaRefusal(asked, `HTTP 429 Too Many Requests from ${asked.host}`);
  if (status === 404 || status === 410) {
    throw new DownloadError("not_found", `${asked.url}: HTTP ${status} (not on the server)`, {
      url: asked.candidate,
    });
  }
  if (status === 416 && asked.have > 0) {
    const total = Number(/\*\/(\d+)/.exec(response.headers.get("content-range") ?? "")?.[1]);
    return { kind: "past_end", total };
  }
  if (status >= 400 || (status !== 200 && status !== 206)) {
    throw await statusRefusal(response, asked, watch, hold);
  }
  const reader = response.body!.getReader();
  hold(reader);
  const first = await watch.read(reader);
  const contentType = response.headers.get("content-type") ?? "";
  const sniffHtml = status === 200 && !first.done && looksLikeHtml(first.value);
  const pinnedSize = asked.expectedMd5 !== undefined && asked.expectedSize !== undefined &&
    announcedTotal(response) === asked.expectedSize;
  if ((contentType.includes("text/html") || sniffHtml) && !pinnedSize) {
    const page = await readBytes(watch, reader, first.done ? undefined : first.value);
    if (isPinnedFile(page, asked)) {
      const again = new Blob([page.bytes]).stream().getReader();
      hold(again);
      return { kind: "body", status, reader: again, first: await again.read(), start: asked.have };
    }
    return htmlPage(new TextDecoder().decode(page.bytes), response, asked);
  }
  return { kind: "body", status, reader, first, ...bodyRange(response, asked) };
}

/** The whole file's size as the response announces it (Content-Length, or a range's total). */
function announcedTotal(response: Response): number | undefined {
  if (response.status === 206) {
    const m = /\/(\d+)$/.exec(response.headers.get("content-range") ?? "");
    return m ? Number(m[1]) : undefined;
  }
  const length = response.headers.get("content-length");
  return length === null ? undefined : Number(length);
}

/** Whether a page read whole, from the first byte, has the pinned size and MD5. */
function isPinnedFile(page: { bytes: Uint8Array; whole: boolean }, asked: Asked): boolean {
  if (!page.whole || asked.have !== 0 || asked.expectedMd5 === undefined) return false;
  if (asked.expectedSize !== undefined && page.bytes.length !== asked.expectedSize) return false;
  return createHash("md5").update(page.bytes).digest("hex") === asked.expectedMd5;
}

/** The byte a body starts at and the file's size, checked against the expected size. */
function bodyRange(response: Response, asked: Asked): { start: number; total?: number } {
  let start = 0;
  let total: number | undefined;
  if (response.status === 206) {
    const m = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(response.headers.get("content-range") ?? "");
    if (!m) {
      throw new DownloadError("http", `${asked.url}: HTTP 206 without a usable Content-Range`, {
        url: asked.candidate,
      });
    }
    start = Number(m[1]);
    total = m[3] === "*" ? undefined : Number(m[3]);
    // A body that starts elsewhere is the partial file's concern (it is discarded there).
    if (start !== asked.have) return { start, total };
  } else {
    const length = response.headers.get("content-length");
    total = length === null ? undefined : Number(length);
  }
  const { expectedSize } = asked;
  if (expectedSize !== undefined && total !== undefined && total !== expectedSize) {
    throw new DownloadError(
      "size",
      `${asked.url}: the server announces ${total} bytes, expected ${expectedSize}`,
      { url: asked.candidate },
    );
  }
  return { start, total };
}

/** The error of a status that is neither 200 nor 206, read from its page when it has one. */
async function statusRefusal(
  response: Response,
  asked: Asked,
  watch: StallWatch,
  hold: (reader: ReadableStreamDefaultReader<Uint8Array>) => void,
): Promise<DownloadError> {
  const { status } = response;
  const contentType = response.headers.get("content-type") ?? "";
  const readable = contentType.includes("html") || contentType.includes("json");
  let text = "";
  if (readable && response.body) {
    const reader = response.body.getReader();
    hold(reader);
    text = new TextDecoder().decode((await readBytes(watch, reader)).bytes);
  }
  if (QUOTA_RE.test(text)) return quotaPage(asked, status);
  const retryable = status >= 500 || status === 408;
  // A Drive API error reply: quota and rate limits back the host off like a quota page.
  const refusal = contentType.includes("json") ? driveRefusal(status, text) : null;
  if (refusal?.quota) {
    return quotaRefusal(
      asked,
      `${refusal.text} (HTTP ${status} ${refusal.reason} from ${asked.host})`,
    );
  }
  if (refusal) {
    return new DownloadError(
      "http",
      `${asked.url}: ${refusal.text} (HTTP ${status} ${refusal.reason})`,
      { url: asked.candidate, retryable },
    );
  }
  return new DownloadError("http", `${asked.url}: HTTP ${status} ${response.statusText}`, {
    url: asked.candidate,
    retryable,
  });
}

/** An HTML page where the file was expected: an interstitial to follow, or a failure. */
function htmlPage(text: string, response: Response, asked: Asked): Classified {
  if (QUOTA_RE.test(text)) throw quotaPage(asked, response.status);
  const next = interstitialLink(text, response.url || asked.url);
  if (next) return { kind: "follow", next, cookie: cookieOf(response) };
  throw new DownloadError(
    "html",
    `${asked.url}: received an HTML page (HTTP ${response.status}, ${text.length} characters) instead of the file`,
    { url: asked.candidate },
  );
}

function quotaPage(asked: Asked, status: number): DownloadError {
  return quotaRefusal(asked, `"Quota exceeded" page (HTTP ${status}) from ${asked.host}`);
}

/** A quota refusal: the host is backed off, and the error says for how long. */
function quotaRefusal(asked: Asked, what: string): DownloadError {
  const ms = asked.hostGate?.reportQuota(asked.host);
  return new DownloadError(
    "quota",
    `${asked.url}: ${what}` +
      (ms !== undefined ? `; host backed off for ${Math.round(ms / 1000)} s` : ""),
    { url: asked.candidate, host: asked.host },
  );
}

function looksLikeHtml(bytes: Uint8Array): boolean {
  return HTML_HEAD_RE.test(new TextDecoder().decode(bytes.subarray(0, 256)));
}

/** Reads a page, up to {@link HTML_CAP} bytes; `whole` when it ended before that. */
async function readBytes(
  watch: StallWatch,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  first?: Uint8Array,
): Promise<{ bytes: Uint8Array<ArrayBuffer>; whole: boolean }> {
  const parts: Uint8Array[] = first ? [first] : [];
  let n = first?.length ?? 0;
  let whole = false;
  while (n < HTML_CAP) {
    const { done, value } = await watch.read(reader);
    if (done) {
      whole = true;
      break;
    }
    parts.push(value);
    n += value.length;
  }
  if (!whole) await reader.cancel();
  const all = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    all.set(p.subarray(0, n - o), o);
    o += p.length;
  }
  return { bytes: all, whole };
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

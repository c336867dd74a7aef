/**
 * Authenticated Google Drive downloads. With an API key, a Drive link
 * (`https://drive.google.com/uc?id=ID`, `…/file/d/ID/view`, `…/open?id=ID`) is fetched from the
 * Drive API's media endpoint (`files/ID?alt=media`) instead of the public link, whose
 * per-file quota and interstitial pages are what usually stop an FFHQ download. The key is sent
 * in the `X-Goog-Api-Key` header (Google's documented equivalent of the `key=` parameter) so it
 * is never part of a URL, and so never part of a log line, an error message or a record that
 * quotes one.
 *
 * @module
 */

/** The Drive API's root, the default of `download.google_api_url`. */
export const DRIVE_API_URL = "https://www.googleapis.com/drive/v3";

/** Hosts whose links name a Drive file id. */
const DRIVE_HOSTS = new Set([
  "drive.google.com",
  "docs.google.com",
  "drive.usercontent.google.com",
]);

/** Raised when the environment variable that should hold the key is unset or empty. */
export class DriveApiKeyError extends Error {
  override readonly name = "DriveApiKeyError";
}

/**
 * The Drive file id a Google Drive link names, or `null` for any other URL.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(driveFileId("https://drive.google.com/uc?id=1abc"), "1abc");
 * assert.equal(driveFileId("https://drive.google.com/file/d/1abc/view"), "1abc");
 * assert.equal(driveFileId("https://example.org/a.png"), null);
 * ```
 */
export function driveFileId(url: string): string | null {
  if (!URL.canParse(url)) return null;
  const u = new URL(url);
  if (!DRIVE_HOSTS.has(u.hostname)) return null;
  const byPath = /^\/file\/d\/([A-Za-z0-9_-]+)/.exec(u.pathname)?.[1];
  const id = byPath ?? u.searchParams.get("id");
  return id && /^[A-Za-z0-9_-]+$/.test(id) ? id : null;
}

/** Options of {@link DriveApi}. */
export interface DriveApiOptions {
  /** The API key. */
  key: string;
  /** The API root. Default {@link DRIVE_API_URL}. */
  baseUrl?: string;
}

/**
 * Routes Drive links through the Drive API with a key. Holds the key in a private field, so
 * printing or serializing the object does not show it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const api = new DriveApi({ key: "a-key" });
 * const url = api.route("https://drive.google.com/uc?id=1abc");
 * assert.equal(url, "https://www.googleapis.com/drive/v3/files/1abc?alt=media");
 * assert.deepEqual(api.headersFor(url), { "x-goog-api-key": "a-key" });
 * assert.equal(JSON.stringify(api).includes("a-key"), false);
 * ```
 */
export class DriveApi {
  readonly baseUrl: string;
  readonly #key: string;
  readonly #prefix: string;

  constructor({ key, baseUrl = DRIVE_API_URL }: DriveApiOptions) {
    if (!key) throw new DriveApiKeyError("the Drive API key is empty");
    this.#key = key;
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.#prefix = `${this.baseUrl}/files/`;
  }

  /**
   * The API from `download.google_api_key_env` (the name of the variable holding the key) and
   * `download.google_api_url`, or `null` when no variable is named. A named variable that is
   * unset or empty fails with a {@link DriveApiKeyError} that names it (never its value).
   */
  static fromConfig(
    download: { google_api_key_env?: string | null; google_api_url?: string },
    env: { get(name: string): string | undefined } = Deno.env,
  ): DriveApi | null {
    const name = download.google_api_key_env;
    if (!name) return null;
    const key = env.get(name)?.trim();
    if (!key) {
      throw new DriveApiKeyError(
        `download.google_api_key_env names the environment variable ${name}, but it is ` +
          `${env.get(name) === undefined ? "not set" : "empty"}: export ${name}=<your Drive API ` +
          `key>, or remove the field to use the public links`,
      );
    }
    return new DriveApi({ key, baseUrl: download.google_api_url });
  }

  /** The URL to fetch for `url`: the API media URL for a Drive link, `url` itself otherwise. */
  route(url: string): string {
    const id = driveFileId(url);
    return id === null ? url : `${this.#prefix}${id}?alt=media`;
  }

  /** The request headers that authenticate `url` when it is an API URL; otherwise none. */
  headersFor(url: string): Record<string, string> | undefined {
    return url.startsWith(this.#prefix) ? { "x-goog-api-key": this.#key } : undefined;
  }

  /** Never the key. */
  toJSON(): { baseUrl: string } {
    return { baseUrl: this.baseUrl };
  }
}

/** What a Drive API error reply says. */
export interface DriveRefusal {
  /** The reason code (`downloadQuotaExceeded`, `userRateLimitExceeded`, `notFound`, …). */
  reason: string;
  /** Whether it is a quota or rate limit: the host backs off and the request is tried later. */
  quota: boolean;
  /** latentforge's own words for it. */
  text: string;
}

const QUOTA_REASONS = new Set([
  "downloadQuotaExceeded",
  "userRateLimitExceeded",
  "rateLimitExceeded",
  "quotaExceeded",
  "dailyLimitExceeded",
  "sharingRateLimitExceeded",
  "RATE_LIMIT_EXCEEDED",
  "RESOURCE_EXHAUSTED",
]);

const WORDS: Record<string, string> = {
  downloadQuotaExceeded: "the file's download quota is used up for now",
  userRateLimitExceeded: "too many requests with this key for now",
  rateLimitExceeded: "too many requests for now",
  quotaExceeded: "the project's quota is used up for now",
  dailyLimitExceeded: "the key's daily limit is used up",
  notFound: "no such file, or it is not shared publicly",
  keyInvalid: "the API key is not valid: check the variable download.google_api_key_env names",
  API_KEY_INVALID: "the API key is not valid: check the variable download.google_api_key_env names",
  forbidden: "the key may not read this file",
  accessNotConfigured: "the Drive API is not enabled for the key's Google Cloud project",
  SERVICE_DISABLED: "the Drive API is not enabled for the key's Google Cloud project",
};

/**
 * Reads a Drive API error reply (`{"error": {"errors": [{"reason": …}], "code": …}}` or the
 * newer `{"error": {"status": …, "details": [{"reason": …}]}}`), or `null` when the body is not
 * one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const r = driveRefusal(403, '{"error":{"errors":[{"reason":"downloadQuotaExceeded"}],"code":403}}');
 * assert.deepEqual(r, {
 *   reason: "downloadQuotaExceeded",
 *   quota: true,
 *   text: "the file's download quota is used up for now",
 * });
 * assert.equal(driveRefusal(500, "<html>"), null);
 * ```
 */
export function driveRefusal(status: number, body: string): DriveRefusal | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    // A reply that is not JSON is not a Drive API error reply: the caller reports its status.
    if (error instanceof SyntaxError) return null;
    throw error;
  }
  const error = (parsed as { error?: Record<string, unknown> })?.error;
  if (!error || typeof error !== "object") return null;
  const errors = Array.isArray(error.errors) ? error.errors as { reason?: unknown }[] : [];
  const details = Array.isArray(error.details) ? error.details as { reason?: unknown }[] : [];
  const reason =
    [...errors, ...details].map((e) => e?.reason).find((r) =>
      typeof r === "string" && r.length > 0
    ) as string | undefined ??
      (typeof error.status === "string"
        ? error.status
        : status === 404
        ? "notFound"
        : `http${status}`);
  const quota = QUOTA_REASONS.has(reason) || status === 429;
  return { reason, quota, text: WORDS[reason] ?? `the Drive API refused (${reason})` };
}

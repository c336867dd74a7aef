/**
 * The error a verified download fails with, and whether trying again can help.
 *
 * @module
 */

/**
 * Why a download failed:
 * - `http`: an unexpected status code (5xx are retryable, other 4xx are not);
 * - `stall`: no byte arrived for the configured stall time;
 * - `reset`: the connection broke while the body was streaming;
 * - `truncated`: the body ended before the expected size;
 * - `md5`: the complete file's MD5 differs from the expected one;
 * - `size`: the file is larger than expected, or its final size differs;
 * - `html`: an HTML page arrived where a file was expected;
 * - `quota`: the host refuses for now (HTTP 429 or a "Quota exceeded" page);
 * - `not_found`: the file is not on the server (404 / 410);
 * - `bad_url`: the URL or relative path can never be fetched (not http(s), absolute, `..`).
 */
export type DownloadErrorKind =
  | "http"
  | "stall"
  | "reset"
  | "truncated"
  | "md5"
  | "size"
  | "html"
  | "quota"
  | "not_found"
  | "bad_url";

const RETRYABLE: Record<DownloadErrorKind, boolean> = {
  http: true,
  stall: true,
  reset: true,
  truncated: true,
  md5: true,
  size: true,
  html: true,
  quota: true,
  not_found: false,
  bad_url: false,
};

/** Raised by `downloadVerified`; `retryable` says whether another attempt can succeed. */
export class DownloadError extends Error {
  override readonly name = "DownloadError";
  /** What went wrong, in one word. */
  readonly kind: DownloadErrorKind;
  /** Whether another attempt (later, or from another URL) can succeed. */
  readonly retryable: boolean;
  /**
   * Whether a retry after this error uses up an attempt: not for a quota refusal, which says
   * "not now" and whose waiting the host gate enforces.
   */
  readonly countsAsAttempt: boolean;
  /** The URL the failure happened on, when there was one. */
  readonly url?: string;
  /** For `quota`: the host that refused. */
  readonly host?: string;

  constructor(
    kind: DownloadErrorKind,
    message: string,
    options: { url?: string; host?: string; retryable?: boolean; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.kind = kind;
    this.retryable = options.retryable ?? RETRYABLE[kind];
    this.countsAsAttempt = kind !== "quota";
    this.url = options.url;
    this.host = options.host;
  }
}

/**
 * Streaming one response body into a partial file: bytes appended in large blocks and hashed
 * in order, a stall noticed when no byte arrives for a while, and every way the transfer can
 * end turned into a {@link DownloadError} that says how far it got.
 *
 * @module
 */

import { concatBytes } from "../base/bytes.ts";
import { DownloadError } from "./download_error.ts";
import type { Hasher } from "./download_partial.ts";
import { removeIfPresent, writeAll } from "../base/fs.ts";

/** Small network chunks are gathered into appends of about this size. */
const WRITE_BLOCK = 256 * 1024;
const STALLED = Symbol("stalled");

/**
 * Fires `onStall` when `kick` has not been called for `ms`. Reads go through `read`, which also
 * fails on a stall: aborting the fetch alone does not always wake a read that is waiting on a
 * silent connection.
 */
export class StallWatch {
  #last = performance.now();
  readonly #timer: ReturnType<typeof setInterval>;
  // Resolves (never rejects) on a stall, so nothing is left unhandled when no read waits on it.
  readonly #stalled: Promise<typeof STALLED>;
  constructor(ms: number, onStall: () => void) {
    let fire!: (s: typeof STALLED) => void;
    this.#stalled = new Promise((resolve) => (fire = resolve));
    const period = Math.max(5, Math.min(1000, ms / 4));
    this.#timer = setInterval(() => {
      if (performance.now() - this.#last >= ms) {
        clearInterval(this.#timer);
        onStall();
        fire(STALLED);
      }
    }, period);
  }
  kick(): void {
    this.#last = performance.now();
  }
  async read(
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<ReadableStreamReadResult<Uint8Array>> {
    const result = await Promise.race([reader.read(), this.#stalled]);
    if (result === STALLED) throw new Error("stalled");
    this.kick();
    return result;
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Where a transfer stands, for the message of the error that ends it. */
export interface TransferAt {
  /** The URL requested (after interstitial hops). */
  url: string;
  /** The candidate URL it came from, which errors name as theirs. */
  candidate: string;
  /** Bytes in the partial file so far. */
  have: number;
}

/**
 * One request's abort controller, stall watch and body: `signal` goes to `fetch`, `failure`
 * names why the transfer ended, and `close` stops the watch and gives up an unfinished body.
 */
export class Transfer {
  readonly #controller = new AbortController();
  readonly #outer?: AbortSignal;
  readonly #onAbort = () => this.#controller.abort(this.#outer!.reason);
  readonly #stallMs: number;
  #stalled = false;
  #body?: ReadableStream<Uint8Array> | ReadableStreamDefaultReader<Uint8Array>;
  readonly watch: StallWatch;

  constructor(stallMs: number, outer?: AbortSignal) {
    this.#stallMs = stallMs;
    this.#outer = outer;
    outer?.addEventListener("abort", this.#onAbort, { once: true });
    this.watch = new StallWatch(stallMs, () => {
      this.#stalled = true;
      this.#controller.abort(new Error("stalled"));
    });
  }

  /** The signal the request runs under: the caller's, or a stall. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Marks the response body (or the reader holding it) as what `close` gives up unless done. */
  hold(body: ReadableStream<Uint8Array> | ReadableStreamDefaultReader<Uint8Array> | null): void {
    this.#body = body ?? undefined;
  }

  /** The body was read to its end: nothing to give up. */
  release(): void {
    this.#body = undefined;
  }

  /** The error the transfer ends with: the caller's abort reason, a stall, or a broken link. */
  failure(error: unknown, at: TransferAt): unknown {
    if (this.#outer?.aborted) return this.#outer.reason;
    if (this.#stalled) {
      return new DownloadError(
        "stall",
        `${at.url}: no byte received for ${this.#stallMs} ms (after ${at.have} bytes); partial kept`,
        { url: at.candidate },
      );
    }
    if (error instanceof DownloadError) return error;
    return new DownloadError(
      "reset",
      `${at.url}: connection failed after ${at.have} bytes: ${(error as Error)?.message ?? error}`,
      { url: at.candidate, cause: error },
    );
  }

  /** Stops the stall watch and cancels a body that was not read to its end. */
  async close(): Promise<void> {
    this.watch.stop();
    this.#outer?.removeEventListener("abort", this.#onAbort);
    const body = this.#body;
    this.#body = undefined;
    if (!body || (body instanceof ReadableStream && body.locked)) return;
    try {
      await body.cancel();
    } catch (error) {
      // Cancelling a body fails with the error its stream already ended with: the abort (a
      // stall or the caller's) or a broken connection. The transfer's outcome is decided and
      // reported by then; only those two are expected here.
      if (error !== this.#controller.signal.reason && !(error instanceof TypeError)) throw error;
    }
  }
}

/** What {@link streamToPartial} takes. */
export interface StreamOptions {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  /** The first read of the body, already taken to sniff for HTML. */
  first: ReadableStreamReadResult<Uint8Array>;
  partialPath: string;
  /** Bytes announced by the response (its Content-Range total or Content-Length). */
  total?: number;
  expectedSize?: number;
  hasher: Hasher;
  /** Whether the hasher takes ownership of each block (a pooled one does). */
  ownsBlocks: boolean;
  watch: StallWatch;
  onBytes?: (bytes: number) => void;
}

/**
 * Appends the body to the partial file and hashes it. `at.have` follows the bytes received,
 * so an error message says how far it got; bytes that arrived before a failure are written,
 * so the next attempt resumes after them. Resolves with the bytes this body delivered.
 */
export async function streamToPartial(options: StreamOptions, at: TransferAt): Promise<number> {
  const { reader, partialPath, expectedSize, hasher, watch } = options;
  let next = options.first;
  let fetched = 0;
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  using file = await Deno.open(partialPath, { append: true, create: true });
  const flush = async () => {
    if (pendingBytes === 0) return;
    // A pooled hasher takes ownership of the block's buffer, so it gets a fresh copy.
    const block = pending.length === 1 && !options.ownsBlocks
      ? pending[0]
      : concatBytes(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await writeAll(file, block);
    hasher.update(block);
  };
  try {
    while (!next.done) {
      const chunk = next.value;
      at.have += chunk.length;
      fetched += chunk.length;
      options.onBytes?.(chunk.length);
      if (expectedSize !== undefined && at.have > expectedSize) {
        pending = [];
        pendingBytes = 0;
        await removeIfPresent(partialPath);
        throw new DownloadError(
          "size",
          `${at.url}: received more than the expected ${expectedSize} bytes; partial discarded`,
          { url: at.candidate },
        );
      }
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= WRITE_BLOCK) await flush();
      next = await watch.read(reader);
    }
    await flush();
  } finally {
    if (pendingBytes > 0) await keepPending(file, concatBytes(pending, pendingBytes));
  }
  const want = options.total ?? expectedSize;
  if (want !== undefined && at.have < want) {
    throw new DownloadError(
      "truncated",
      `${at.url}: the body ended at byte ${at.have} of ${want}; partial kept for resuming`,
      { url: at.candidate },
    );
  }
  return fetched;
}

/** Writes what arrived before a failure, so the next attempt resumes after it. */
async function keepPending(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  try {
    await writeAll(file, bytes);
  } catch (error) {
    // An append that fails part-way still leaves a valid prefix (the next attempt hashes what
    // is on disk), and the failure that ended the transfer is the one to report.
    if (!isOsError(error)) throw error;
  }
}

/** Whether an error is one the operating system raised for a file operation. */
function isOsError(error: unknown): boolean {
  return Object.values(Deno.errors).some((kind) => error instanceof kind);
}

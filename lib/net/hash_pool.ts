/**
 * Worker threads that compute the MD5 and SHA-256 of downloads, so hashing (about half of a
 * download's CPU time on a fast link) runs beside the network and disk work instead of on the
 * same thread. Optional: `downloadVerified` hashes on its own thread without one.
 *
 * @module
 */

/** The two digests of one file. */
export interface Digests {
  md5: string;
  sha256: string;
}

/** One file's hashing, fed in order with the blocks written to the partial file. */
export interface HashSession {
  /** Adds a block; the block's buffer is transferred to the worker and must not be reused. */
  update(block: Uint8Array): void;
  /** Resolves with the digests of the prefix and every block added. */
  digest(): Promise<Digests>;
  /** Forgets the session (after a failed download). */
  drop(): void;
}

/** Options of {@link HashPool}. */
export interface HashPoolOptions {
  /** Worker threads; sessions are spread over them. Default 1. */
  workers?: number;
}

/**
 * A set of hashing workers shared by the downloads of a run; `close()` it when the run ends
 * (workers keep the process alive until then).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { downloadVerified } from "./download.ts";
 * const body = new TextEncoder().encode("png bytes");
 * const server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   () => new Response(body),
 * );
 * const url = `http://127.0.0.1:${server.addr.port}/images1024x1024/00000/00017.png`;
 * const dir = await Deno.makeTempDir();
 * const hashPool = new HashPool();
 * try {
 *   const got = await downloadVerified({
 *     urls: [url],
 *     partialPath: `${dir}/00017.png.part`,
 *     expectedMd5: createHash("md5").update(body).digest("hex"),
 *     hashPool,
 *   });
 *   assert.equal(got.sha256, createHash("sha256").update(body).digest("hex"));
 * } finally {
 *   hashPool.close();
 *   await server.shutdown();
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class HashPool {
  readonly #workers: Worker[];
  readonly #waiting = new Map<
    number,
    { resolve: (d: Digests) => void; reject: (e: Error) => void }
  >();
  #next = 0;
  #closed = false;

  constructor({ workers = 1 }: HashPoolOptions = {}) {
    if (!(workers >= 1)) throw new RangeError(`workers must be at least 1, found ${workers}`);
    const url = new URL("./hash_worker.ts", import.meta.url).href;
    this.#workers = Array.from({ length: workers }, () => {
      const w = new Worker(url, { type: "module" });
      w.onmessage = (e: MessageEvent<{ id: number; error?: string } & Partial<Digests>>) => {
        const waiter = this.#waiting.get(e.data.id);
        if (!waiter) return;
        this.#waiting.delete(e.data.id);
        if (e.data.error) waiter.reject(new Error(`hashing failed: ${e.data.error}`));
        else waiter.resolve({ md5: e.data.md5!, sha256: e.data.sha256! });
      };
      w.onerror = (e) => {
        e.preventDefault();
        for (const waiter of this.#waiting.values()) {
          waiter.reject(new Error(`hashing worker failed: ${e.message}`));
        }
        this.#waiting.clear();
      };
      return w;
    });
  }

  /**
   * Starts hashing a file whose first `prefixBytes` are already in `prefixPath` (a resumed
   * partial file); the worker reads that prefix itself.
   */
  begin(prefixPath?: string, prefixBytes = 0): HashSession {
    if (this.#closed) throw new Error("the hash pool is closed");
    const id = this.#next++;
    const worker = this.#workers[id % this.#workers.length];
    worker.postMessage({ op: "begin", id, prefixPath, prefixBytes });
    return {
      update: (block) => {
        worker.postMessage({ op: "update", id, bytes: block }, [block.buffer as ArrayBuffer]);
      },
      digest: () =>
        new Promise<Digests>((resolve, reject) => {
          if (this.#closed) return reject(new Error("the hash pool is closed"));
          this.#waiting.set(id, { resolve, reject });
          worker.postMessage({ op: "digest", id });
        }),
      drop: () => {
        if (!this.#closed) worker.postMessage({ op: "drop", id });
      },
    };
  }

  /** Stops the workers; pending digests are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#workers) w.terminate();
    for (const waiter of this.#waiting.values()) {
      waiter.reject(new Error("the hash pool is closed"));
    }
    this.#waiting.clear();
  }
}

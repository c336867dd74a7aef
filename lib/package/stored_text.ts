/**
 * A text file of the dataset written piece by piece into the store: the pieces go to a temp
 * file in the store's temp folder as they come (hashed on the way), and the finished file is
 * fsynced and moved into the store under its digest — as `ObjectStore.put` does for bytes held
 * in memory, without holding the text. What package writes per image (manifest.json, each
 * split's metrics.csv and manifest.txt) grows with the dataset; this keeps it out of memory.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { writeAll } from "../base/fs.ts";
import type { ObjectStore } from "../store/objects.ts";

/** Pieces are gathered up to about this many UTF-16 code units before a write. */
const FLUSH_AT = 1 << 16;

/**
 * A text object being written. Call {@linkcode StoredText.finish} for its digest, or
 * {@linkcode StoredText.discard} when the work stopped before it was done.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const text = await StoredText.open(store, "lines");
 * for (const n of [1, 2, 3]) await text.write(`line ${n}\n`);
 * const digest = await text.finish();
 * assert.equal(new TextDecoder().decode(await store.get(digest)), "line 1\nline 2\nline 3\n");
 * assert.equal(digest, await store.put(new TextEncoder().encode("line 1\nline 2\nline 3\n")));
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export class StoredText {
  readonly #store: ObjectStore;
  readonly #path: string;
  readonly #file: Deno.FsFile;
  readonly #hash: Hash = createHash("sha256");
  readonly #encoder = new TextEncoder();
  #pending: string[] = [];
  #pendingLength = 0;
  #closed = false;

  private constructor(store: ObjectStore, path: string, file: Deno.FsFile) {
    this.#store = store;
    this.#path = path;
    this.#file = file;
  }

  /** Opens a new temp file in the store; `hint` names it there (e.g. `manifest`). */
  static async open(store: ObjectStore, hint: string): Promise<StoredText> {
    const path = store.tempPath(hint);
    const file = await Deno.open(path, { write: true, createNew: true });
    return new StoredText(store, path, file);
  }

  /** Appends `text`. */
  async write(text: string): Promise<void> {
    this.#pending.push(text);
    this.#pendingLength += text.length;
    if (this.#pendingLength >= FLUSH_AT) await this.#flush();
  }

  /** Writes what is left, fsyncs, stores the file and returns its digest. */
  async finish(): Promise<string> {
    await this.#flush();
    await this.#file.sync();
    this.#close();
    return await this.#store.putFile(this.#path, this.#hash.digest("hex"));
  }

  /** Removes the temp file of an unfinished text. */
  async discard(): Promise<void> {
    this.#close();
    await Deno.remove(this.#path).catch((e) => {
      // Already gone is what discarding wants.
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }

  async #flush(): Promise<void> {
    if (this.#pendingLength === 0) return;
    const bytes = this.#encoder.encode(this.#pending.join(""));
    this.#pending = [];
    this.#pendingLength = 0;
    this.#hash.update(bytes);
    await writeAll(this.#file, bytes);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

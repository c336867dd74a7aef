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
import type { ObjectStore } from "../store/objects.ts";
import { TextFile } from "./text_file.ts";

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
  readonly #text: TextFile;
  readonly #hash: Hash;

  private constructor(store: ObjectStore, text: TextFile, hash: Hash) {
    this.#store = store;
    this.#text = text;
    this.#hash = hash;
  }

  /** Opens a new temp file in the store; `hint` names it there (e.g. `manifest`). */
  static async open(store: ObjectStore, hint: string): Promise<StoredText> {
    const hash = createHash("sha256");
    const text = await TextFile.create(store.tempPath(hint), (bytes) => hash.update(bytes));
    return new StoredText(store, text, hash);
  }

  /** Appends `text`. */
  async write(text: string): Promise<void> {
    await this.#text.write(text);
  }

  /** Writes what is left, fsyncs, stores the file and returns its digest. */
  async finish(): Promise<string> {
    await this.#text.flush();
    await this.#text.file.sync();
    this.#text.close();
    return await this.#store.putFile(this.#text.path, this.#hash.digest("hex"));
  }

  /** Removes the temp file of an unfinished text. */
  async discard(): Promise<void> {
    await this.#text.remove();
  }
}

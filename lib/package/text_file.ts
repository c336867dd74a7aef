/**
 * A temp text file written in pieces: the pieces are gathered and encoded to UTF-8 in writes of
 * about 64 KiB, so that many small lines cost few system calls. The base of the store's text
 * objects (stored_text.ts) and of the rows set aside on disk (row_spill.ts).
 *
 * @module
 */
import { writeAll } from "../base/fs.ts";

/** Pieces are gathered up to about this many UTF-16 code units before a write. */
const FLUSH_AT = 1 << 16;

/**
 * A new file at `path`, written in pieces; `onBytes` sees every byte written, in order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const file = await TextFile.create(`${dir}/a.txt`);
 * for (const n of [1, 2]) await file.write(`line ${n}\n`);
 * await file.flush();
 * file.close();
 * assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "line 1\nline 2\n");
 * await file.remove();
 * await Deno.remove(dir);
 * ```
 */
export class TextFile {
  readonly path: string;
  readonly file: Deno.FsFile;
  readonly #onBytes: (bytes: Uint8Array) => void;
  readonly #encoder = new TextEncoder();
  #pending: string[] = [];
  #pendingLength = 0;
  #closed = false;

  private constructor(path: string, file: Deno.FsFile, onBytes: (bytes: Uint8Array) => void) {
    this.path = path;
    this.file = file;
    this.#onBytes = onBytes;
  }

  /** Creates the file (which must not exist). */
  static async create(
    path: string,
    onBytes: (bytes: Uint8Array) => void = () => {},
  ): Promise<TextFile> {
    return new TextFile(path, await Deno.open(path, { write: true, createNew: true }), onBytes);
  }

  /** Appends `text`. */
  async write(text: string): Promise<void> {
    this.#pending.push(text);
    this.#pendingLength += text.length;
    if (this.#pendingLength >= FLUSH_AT) await this.flush();
  }

  /** Writes what is gathered. */
  async flush(): Promise<void> {
    if (this.#pendingLength === 0) return;
    const bytes = this.#encoder.encode(this.#pending.join(""));
    this.#pending = [];
    this.#pendingLength = 0;
    this.#onBytes(bytes);
    await writeAll(this.file, bytes);
  }

  /** Closes the file (once; later calls do nothing). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.file.close();
  }

  /** Closes and removes the file, if it is still there. */
  async remove(): Promise<void> {
    this.close();
    await Deno.remove(this.path).catch((e) => {
      // Already gone (moved into the store, or removed) is what removing wants.
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}

/**
 * Rows set aside on disk: JSON lines in a temp file, read back in the order they were written.
 * A split's images come in id order, its files want them bucket by bucket; the rows of every
 * bucket but the one being read are spilled here rather than held (or read again from upstream
 * once per bucket).
 *
 * @module
 */
import { writeAll } from "../base/fs.ts";
import type { PackageRow } from "./rows.ts";

/** Rows are gathered up to about this many UTF-16 code units before a write. */
const FLUSH_AT = 1 << 16;

/**
 * A temp file of rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PackageRow } from "./rows.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const spill = await RowSpill.open(`${dir}/rows.jsonl`);
 * await spill.write({ id: "a", caption: "two\nlines" } as unknown as PackageRow);
 * await spill.write({ id: "b" } as unknown as PackageRow);
 * const back = [];
 * for await (const row of spill.rows()) back.push(row);
 * assert.deepEqual(back, [{ id: "a", caption: "two\nlines" }, { id: "b" }]);
 * await spill.remove();
 * await Deno.remove(dir);
 * ```
 */
export class RowSpill {
  readonly #path: string;
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();
  #pending: string[] = [];
  #pendingLength = 0;
  #closed = false;

  private constructor(path: string, file: Deno.FsFile) {
    this.#path = path;
    this.#file = file;
  }

  /** Creates the temp file at `path` (which must not exist). */
  static async open(path: string): Promise<RowSpill> {
    return new RowSpill(path, await Deno.open(path, { write: true, createNew: true }));
  }

  /** Appends a row. */
  async write(row: PackageRow): Promise<void> {
    // JSON escapes line breaks inside strings: one row is one line.
    const line = JSON.stringify(row) + "\n";
    this.#pending.push(line);
    this.#pendingLength += line.length;
    if (this.#pendingLength >= FLUSH_AT) await this.#flush();
  }

  /** The rows written, in order (writing ends here). */
  async *rows(): AsyncGenerator<PackageRow> {
    await this.#flush();
    this.#close();
    const file = await Deno.open(this.#path, { read: true });
    let rest = "";
    for await (const text of file.readable.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      for (const line of lines) yield JSON.parse(line) as PackageRow;
    }
  }

  /** Removes the temp file. */
  async remove(): Promise<void> {
    this.#close();
    await Deno.remove(this.#path).catch((e) => {
      // Already gone is what removing wants.
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }

  async #flush(): Promise<void> {
    if (this.#pendingLength === 0) return;
    const bytes = this.#encoder.encode(this.#pending.join(""));
    this.#pending = [];
    this.#pendingLength = 0;
    await writeAll(this.#file, bytes);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

/**
 * Rows set aside on disk: JSON lines in a temp file, read back in the order they were written.
 * A split's images come in id order, its files want them bucket by bucket; the rows of every
 * bucket but the one being read are spilled here rather than held (or read again from upstream
 * once per bucket).
 *
 * @module
 */
import type { PackageRow } from "./rows.ts";
import { TextFile } from "./text_file.ts";

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
  readonly #text: TextFile;

  private constructor(text: TextFile) {
    this.#text = text;
  }

  /** Creates the temp file at `path` (which must not exist). */
  static async open(path: string): Promise<RowSpill> {
    return new RowSpill(await TextFile.create(path));
  }

  /** Appends a row. */
  async write(row: PackageRow): Promise<void> {
    // JSON escapes line breaks inside strings: one row is one line.
    await this.#text.write(JSON.stringify(row) + "\n");
  }

  /** The rows written, in order (writing ends here). */
  async *rows(): AsyncGenerator<PackageRow> {
    await this.#text.flush();
    this.#text.close();
    const file = await Deno.open(this.#text.path, { read: true });
    let rest = "";
    for await (const text of file.readable.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      for (const line of lines) yield JSON.parse(line) as PackageRow;
    }
  }

  /** Removes the temp file. */
  async remove(): Promise<void> {
    await this.#text.remove();
  }
}

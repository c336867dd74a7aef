/**
 * Parquet tables as Hugging Face datasets and img2dataset store them, read where they lie with
 * hyparquet (snappy, gzip, zstd, brotli and lz4 pages through hyparquet-compressors): an image
 * column of bytes (`binary`, or the `Image` struct `{bytes, path}`), and other columns — a
 * caption, an id, any metadata.
 *
 * - **Ids**: the `id_column`'s value, else `<file stem>/<row>`; shared ids fail, named.
 * - **Captions** come from `caption_column` (when the table has it); every other column that is
 *   not the image or the id rides along as the image's metadata.
 * - **Damage**: a row group that cannot be decoded fails each of its rows, named by the file,
 *   the row group and the rows; a row without image bytes fails alone.
 * - **Read again by position**: {@link readParquetImage} reads one row's bytes from its row
 *   group (decoded row groups are kept in a small cache, since items come in listing order).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import {
  type AsyncBuffer,
  type FileMetaData,
  parquetMetadataAsync,
  parquetReadObjects,
} from "hyparquet";
import { compressors } from "hyparquet-compressors";
import type { SkippedFile } from "./folder_spec.ts";
import { type DatasetItem, type ItemIndex, SpecError } from "./item_index.ts";
import type { SplitFiles } from "./webdataset_spec.ts";
import { withUniqueIds } from "./webdataset_spec.ts";

/** Which columns hold what. */
export interface ParquetColumns {
  /** The image bytes: binary, or a struct with `bytes`. Default `image`. */
  image_column: string;
  /** The image's id; default: `<file stem>/<row>`. */
  id_column?: string;
  /** The caption, when the table has this column. Default `caption`. */
  caption_column: string;
}

/** Raised when a table lacks a configured column or a row cannot be read back. */
export class ParquetTableError extends Error {
  override readonly name = "ParquetTableError";
}

/**
 * Lists every row of every file of every split, in the order given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parquetWriteBuffer } from "hyparquet-writer";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const buffer = parquetWriteBuffer({
 *     columnData: [
 *       { name: "image", data: [new Uint8Array([1, 2])], type: "BYTE_ARRAY" },
 *       { name: "caption", data: ["a red fox"], type: "STRING" },
 *     ],
 *   });
 *   await Deno.writeFile(`${dir}/t.parquet`, new Uint8Array(buffer));
 *   const index = await ingestParquet([["all", [`${dir}/t.parquet`]]], {
 *     image_column: "image",
 *     caption_column: "caption",
 *   });
 *   assert.deepEqual(index.items.map((i) => [i.id, i.caption, i.size]), [["t/0", "a red fox", 2]]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function ingestParquet(
  splits: SplitFiles,
  columns: ParquetColumns,
): Promise<ItemIndex & { skipped: SkippedFile[] }> {
  const items: DatasetItem[] = [];
  for (const [split, files] of splits) {
    for (const file of files) {
      using table = await ParquetFile.open(file);
      const names = table.metadata.schema.slice(1).map((s) => s.name);
      for (const column of [columns.image_column, columns.id_column]) {
        if (column !== undefined && !names.includes(column)) {
          throw new SpecError(
            `${file}: expected a column ${JSON.stringify(column)}, found ${names.join(", ")}`,
          );
        }
      }
      let start = 0;
      for (const [group, rowGroup] of table.metadata.row_groups.entries()) {
        const count = Number(rowGroup.num_rows);
        const rows = await table.rowGroup(group, start).catch((e: Error) => e);
        for (let k = 0; k < count; k++) {
          const row = start + k;
          const item = rows instanceof Error
            ? failedRow(
              file,
              split,
              row,
              `row group ${group} (rows ${start}–${
                start + count - 1
              }) cannot be decoded: ${rows.message}`,
            )
            : rowItem(file, split, row, group, rows[k], columns);
          items.push(item);
        }
        start += count;
      }
    }
  }
  if (items.length === 0) {
    throw new SpecError(`no rows found in ${splits.flatMap(([, s]) => s).join(", ")}`);
  }
  return { source: "parquet", items: withUniqueIds(items), skipped: [] };
}

/** A cache of decoded row groups, so that the rows of one group are decoded once. */
export class RowGroupCache {
  #entries = new Map<string, Promise<Record<string, unknown>[]>>();
  constructor(readonly capacity = 2) {}

  /** The rows of `group` of `file`, decoded once while it stays in the cache. */
  rows(file: string, group: number): Promise<Record<string, unknown>[]> {
    const key = `${group}\t${file}`;
    let rows = this.#entries.get(key);
    if (rows === undefined) {
      rows = (async () => {
        using table = await ParquetFile.open(file);
        let start = 0;
        for (let g = 0; g < group; g++) start += Number(table.metadata.row_groups[g].num_rows);
        return await table.rowGroup(group, start);
      })();
      this.#entries.set(key, rows);
      // A failed read is not kept: the next item tries again.
      rows.catch(() => this.#entries.delete(key));
      if (this.#entries.size > this.capacity) {
        this.#entries.delete(this.#entries.keys().next().value!);
      }
    }
    return rows;
  }
}

/**
 * Reads one row's image bytes again by position (its file, row group and row).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parquetWriteBuffer } from "hyparquet-writer";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const buffer = parquetWriteBuffer({
 *     columnData: [{ name: "image", data: [new Uint8Array([7]), new Uint8Array([8, 9])], type: "BYTE_ARRAY" }],
 *   });
 *   await Deno.writeFile(`${dir}/t.parquet`, new Uint8Array(buffer));
 *   const member = { kind: "parquet", file: `${dir}/t.parquet`, row_group: 0, row: 1 } as const;
 *   const bytes = await readParquetImage(member, "image", new RowGroupCache());
 *   assert.deepEqual([...bytes], [8, 9]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function readParquetImage(
  member: { file: string; row_group: number; row: number },
  imageColumn: string,
  cache: RowGroupCache,
): Promise<Uint8Array> {
  const rows = await cache.rows(member.file, member.row_group);
  const first = rows.length > 0 ? Number((rows[0] as { [ROW]: number })[ROW]) : 0;
  const row = rows[member.row - first];
  const bytes = row === undefined ? null : imageBytes(row[imageColumn]);
  if (bytes === null) {
    throw new ParquetTableError(
      `${member.file}: row ${member.row} has no image bytes in column ${imageColumn} (the file ` +
        `changed since it was listed)`,
    );
  }
  return bytes;
}

/** The key under which a decoded row remembers its row number in the file. */
const ROW = Symbol("row");

/** One Parquet file opened for reading by byte ranges. */
class ParquetFile {
  private constructor(
    private readonly file: Deno.FsFile,
    readonly path: string,
    readonly buffer: AsyncBuffer,
    readonly metadata: FileMetaData,
  ) {}

  static async open(path: string): Promise<ParquetFile> {
    const file = await Deno.open(path, { read: true });
    try {
      const byteLength = (await file.stat()).size;
      const buffer: AsyncBuffer = {
        byteLength,
        async slice(start: number, end = byteLength) {
          const out = new Uint8Array(end - start);
          await file.seek(start, Deno.SeekMode.Start);
          let filled = 0;
          while (filled < out.length) {
            const n = await file.read(out.subarray(filled));
            if (n === null) break;
            filled += n;
          }
          return out.buffer;
        },
      };
      const metadata = await parquetMetadataAsync(buffer).catch((e: Error) => {
        throw new SpecError(`${path}: not a Parquet file that can be read: ${e.message}`);
      });
      return new ParquetFile(file, path, buffer, metadata);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** The rows of one row group (which starts at row `start` of the file), as objects. */
  async rowGroup(group: number, start: number): Promise<Record<string, unknown>[]> {
    const count = Number(this.metadata.row_groups[group].num_rows);
    const rows = await parquetReadObjects({
      file: this.buffer,
      metadata: this.metadata,
      rowStart: start,
      rowEnd: start + count,
      compressors,
      // Binary columns stay bytes; text columns are still decoded as text.
      utf8: false,
    });
    rows.forEach((r, k) => Object.defineProperty(r, ROW, { value: start + k }));
    return rows;
  }

  [Symbol.dispose]() {
    this.file.close();
  }
}

function rowItem(
  file: string,
  split: string,
  row: number,
  group: number,
  values: Record<string, unknown>,
  columns: ParquetColumns,
): DatasetItem {
  const bytes = imageBytes(values[columns.image_column]);
  if (bytes === null) {
    return failedRow(file, split, row, `no image bytes in column ${columns.image_column}`);
  }
  const id = columns.id_column === undefined ? null : values[columns.id_column];
  const item: DatasetItem = {
    id: id === null || id === undefined ? `${stem(file)}/${row}` : String(id),
    url: null,
    path: `${basename(file)}/${row}`,
    size: bytes.length,
    md5: createHash("md5").update(bytes).digest("hex"),
    pixel_size: null,
    pixel_md5: null,
    category: split,
    member: { kind: "parquet", file, row_group: group, row },
  };
  const caption = values[columns.caption_column];
  if (typeof caption === "string") item.caption = caption;
  const meta: { [key: string]: unknown } = {};
  for (const [name, value] of Object.entries(values)) {
    if ([columns.image_column, columns.id_column, columns.caption_column].includes(name)) continue;
    const json = jsonValue(value);
    if (json !== undefined) meta[name] = json;
  }
  if (Object.keys(meta).length > 0) item.meta = meta;
  return item;
}

function failedRow(file: string, split: string, row: number, why: string): DatasetItem {
  return {
    id: `${stem(file)}/${row}`,
    url: null,
    path: `${basename(file)}/${row}`,
    size: null,
    md5: null,
    pixel_size: null,
    pixel_md5: null,
    category: split,
    error: `${file}: row ${row}: ${why}`,
  };
}

/** The bytes of an image cell: binary, or the `Image` struct's `bytes`. */
function imageBytes(cell: unknown): Uint8Array | null {
  if (cell instanceof Uint8Array) return cell.length > 0 ? cell : null;
  if (cell !== null && typeof cell === "object" && "bytes" in cell) return imageBytes(cell.bytes);
  return null;
}

/** A cell as JSON metadata: bytes are left out, big integers and dates made plain. */
function jsonValue(value: unknown): unknown {
  if (value instanceof Uint8Array) return undefined;
  if (typeof value === "bigint") {
    return Number.isSafeInteger(Number(value)) ? Number(value) : String(value);
  }
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(jsonValue).filter((v) => v !== undefined);
  if (value !== null && typeof value === "object") {
    const out: { [key: string]: unknown } = {};
    for (const [k, v] of Object.entries(value)) {
      const json = jsonValue(v);
      if (json !== undefined) out[k] = json;
    }
    return out;
  }
  if (typeof value === "number" && !Number.isFinite(value)) return null;
  return value;
}

function stem(file: string): string {
  return basename(file).replace(/\.[^.]*$/, "");
}

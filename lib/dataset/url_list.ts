/**
 * Builds the item index of a list of URLs: either plain text (one URL per line, `#` comments)
 * or a CSV whose header names a `url` column and optionally `id`, `size`, `md5`, `path`,
 * `category`.
 *
 * @module
 */

import { parse } from "csv-parse";
import {
  badUrlReason,
  type DatasetItem,
  isMd5,
  type ItemIndex,
  SpecError,
  unsafePathReason,
} from "./item_index.ts";

const CSV_COLUMNS = ["url", "id", "size", "md5", "path", "category"];

/**
 * Reads a URL list file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/my_images.csv`, "url,size\nhttps://example.org/a.png,1024\n");
 *   const index = await readUrlList(`${dir}/my_images.csv`);
 *   assert.deepEqual(index.items.map((i) => [i.path, i.size]), [["0.png", 1024]]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function readUrlList(path: string): Promise<ItemIndex> {
  return parseUrlList(await Deno.readTextFile(path), path);
}

interface Row {
  line: number;
  fields: Record<string, string>;
}

/**
 * Parses a URL list; `file` names the source in messages. A first line starting with `url`
 * and holding a comma makes it a CSV; otherwise every non-blank, non-`#` line is one URL.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const text = "# my images\nhttps://example.org/a.png\nhttps://example.org/b.JPG\n";
 * const index = await parseUrlList(text, "list.txt");
 * assert.deepEqual(index.items.map((i) => [i.id, i.path]), [["0", "0.png"], ["1", "1.jpg"]]);
 * const csv = await parseUrlList("url,id\nhttps://example.org/a.png,cat\n", "list.csv");
 * assert.equal(csv.items[0].path, "cat.png");
 * ```
 */
export async function parseUrlList(text: string, file: string): Promise<ItemIndex> {
  const body = text.replace(/^\uFEFF/, "");
  const firstLine = body.split(/\r?\n/).find((l) => l.trim() !== "") ?? "";
  const isCsv = /^\s*"?url"?\s*,/i.test(firstLine) || /^\s*"?url"?\s*$/i.test(firstLine);
  const rows = isCsv ? await csvRows(body, file) : textRows(body);
  if (rows.length === 0) throw new SpecError(`${file}: no URLs found`);
  const items: DatasetItem[] = [];
  const seenIds = new Map<string, number>();
  const seenPaths = new Map<string, number>();
  for (const [n, row] of rows.entries()) {
    const item = rowItem(row, n, file);
    for (
      const [value, seen, what] of [[item.id, seenIds, "id"], [
        item.path,
        seenPaths,
        "path",
      ]] as const
    ) {
      const first = seen.get(value);
      if (first !== undefined) {
        throw new SpecError(
          `${file}:${row.line}: duplicate ${what} "${value}" (first at line ${first})`,
        );
      }
      seen.set(value, row.line);
    }
    items.push(item);
  }
  return { source: "urls", items };
}

/** One URL a line; blank lines and `#` comments skipped. */
function textRows(body: string): Row[] {
  const rows: Row[] = [];
  body.split(/\r?\n/).forEach((l, i) => {
    const t = l.trim();
    if (t !== "" && !t.startsWith("#")) rows.push({ line: i + 1, fields: { url: t } });
  });
  return rows;
}

/** The rows of a CSV whose header names known columns only. */
async function csvRows(body: string, file: string): Promise<Row[]> {
  const rows: Row[] = [];
  let header: string[] | null = null;
  const parser = parse(body, { info: true, skip_empty_lines: true, relax_column_count: true });
  try {
    for await (
      const { record, info } of parser as AsyncIterable<
        { record: string[]; info: { lines: number } }
      >
    ) {
      if (!header) {
        header = record.map((h) => h.trim().toLowerCase());
        const unknown = header.find((h) => !CSV_COLUMNS.includes(h));
        if (unknown !== undefined) {
          throw new SpecError(
            `${file}:${info.lines}: unknown column "${unknown}"; expected some of ${
              CSV_COLUMNS.join(", ")
            } (url required)`,
          );
        }
        continue;
      }
      if (record.length !== header.length) {
        throw new SpecError(
          `${file}:${info.lines}: expected ${header.length} columns, found ${record.length}`,
        );
      }
      const fields = Object.fromEntries(header.map((h, i) => [h, record[i].trim()]));
      rows.push({ line: info.lines, fields });
    }
  } catch (error) {
    if (error instanceof SpecError) throw error;
    const e = error as Error & { code?: string; lines?: number };
    if (e.code?.startsWith("CSV_")) {
      throw new SpecError(`${file}:${e.lines ?? "?"}: malformed CSV: ${e.message}`);
    }
    throw error;
  }
  return rows;
}

/** The item of the `n`-th row, its fields checked. */
function rowItem({ line, fields }: Row, n: number, file: string): DatasetItem {
  const bad = (col: string, want: string, found: string): never => {
    throw new SpecError(`${file}:${line}: column ${col}: expected ${want}, found "${found}"`);
  };
  const url = fields.url ?? "";
  const why = badUrlReason(url);
  if (why) bad("url", `an http(s) URL (${why})`, url);
  const id = fields.id || String(n);
  const ext = /\.[A-Za-z0-9]{1,5}$/.exec(new URL(url).pathname)?.[0] ?? "";
  const path = fields.path || `${id}${ext.toLowerCase()}`;
  const pathWhy = unsafePathReason(path);
  if (pathWhy) bad("path", `a relative path without '..' (${pathWhy})`, path);
  let size: number | null = null;
  if (fields.size) {
    size = Number(fields.size);
    if (!Number.isSafeInteger(size) || size < 0) bad("size", "a byte count", fields.size);
  }
  if (fields.md5 && !isMd5(fields.md5)) bad("md5", "32 hex digits", fields.md5);
  return {
    id,
    url,
    path,
    size,
    md5: fields.md5 ? fields.md5.toLowerCase() : null,
    pixel_size: null,
    pixel_md5: null,
    category: fields.category || "all",
  };
}

/**
 * Turns NVIDIA's `ffhq-dataset-v2.json` (an object keyed "0"…"69999", each record with
 * `category`, `metadata`, `image`, `thumbnail`, `in_the_wild`) into a compact item index for
 * one component, streaming from disk so the 255 MB file is never held whole.
 *
 * @module
 */

import { type JsonRecord, jsonRecords } from "./json_records.ts";
import {
  badUrlReason,
  type DatasetItem,
  isMd5,
  type ItemIndex,
  SpecError,
  unsafePathReason,
} from "./item_index.ts";

/** The file components of an FFHQ record. */
export type FfhqComponent = "image" | "thumbnail" | "in_the_wild";

/** Options of {@link ingestFfhqSpec}. */
export interface FfhqSpecOptions {
  /** Which file of each record becomes the item. Default `image`. */
  component?: FfhqComponent;
  /** Keep only the first `limit` records of the file (in file order). Default: all. */
  limit?: number;
}

const COMPONENTS: readonly FfhqComponent[] = ["image", "thumbnail", "in_the_wild"];
const CATEGORIES = new Set(["training", "validation"]);

/**
 * Reads an FFHQ spec file and returns its item index, validating every record of the chosen
 * component: a malformed file, a missing or malformed `file_md5`, a duplicate id, a negative
 * size, an unsafe `file_path` or a non-http(s) `file_url` throw a {@link SpecError} naming the
 * file, the line, the item id and the field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const record = {
 *     category: "training",
 *     image: {
 *       file_url: "https://drive.google.com/uc?id=1abc",
 *       file_path: "images1024x1024/00000/00017.png",
 *       file_size: 1488194,
 *       file_md5: "ddeaeea6ce59569643715759d537fd1b",
 *     },
 *   };
 *   const spec = JSON.stringify({ "17": record });
 *   await Deno.writeTextFile(`${dir}/ffhq-dataset-v2.json`, spec);
 *   const index = await ingestFfhqSpec(`${dir}/ffhq-dataset-v2.json`, { component: "image" });
 *   assert.deepEqual(index.items.map((i) => [i.id, i.path, i.size]), [
 *     ["17", "images1024x1024/00000/00017.png", 1488194],
 *   ]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function ingestFfhqSpec(
  path: string,
  options: FfhqSpecOptions = {},
): Promise<ItemIndex> {
  using file = await Deno.open(path, { read: true });
  return await ingestFfhqSpecStream(file.readable, path, options);
}

/**
 * Like {@link ingestFfhqSpec}, from a byte stream; `name` stands for the file in messages.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const record = {
 *   category: "training",
 *   image: {
 *     file_url: "https://drive.google.com/uc?id=1abc",
 *     file_path: "images1024x1024/00000/00017.png",
 *     file_size: 1488194,
 *     file_md5: "ddeaeea6ce59569643715759d537fd1b",
 *   },
 * };
 * const spec = JSON.stringify({ "17": record });
 * const index = await ingestFfhqSpecStream(new Blob([spec]).stream(), "ffhq-dataset-v2.json");
 * assert.equal(index.items[0].md5, "ddeaeea6ce59569643715759d537fd1b");
 * await assert.rejects(
 *   ingestFfhqSpecStream(new Blob(['{"17": {"category": "test"}}']).stream(), "bad.json"),
 *   /bad\.json:1: item "17" field category/,
 * );
 * ```
 */
export async function ingestFfhqSpecStream(
  source: AsyncIterable<Uint8Array>,
  name: string,
  { component = "image", limit }: FfhqSpecOptions = {},
): Promise<ItemIndex> {
  if (!COMPONENTS.includes(component)) {
    throw new SpecError(
      `component must be one of ${COMPONENTS.join(", ")}, found ${JSON.stringify(component)}`,
    );
  }
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
    throw new SpecError(`limit must be a non-negative integer, found ${limit}`);
  }
  const items: DatasetItem[] = [];
  const seen = new Map<string, number>();
  try {
    for await (const record of jsonRecords(source, name)) {
      if (limit !== undefined && items.length >= limit) break;
      const first = seen.get(record.key);
      if (first !== undefined) {
        throw new SpecError(
          `${name}:${record.line}: duplicate item id ${
            JSON.stringify(record.key)
          } (first at line ${first})`,
        );
      }
      seen.set(record.key, record.line);
      items.push(toItem(record, component, name));
    }
  } catch (error) {
    if (error instanceof SpecError) throw error;
    if ((error as Error)?.name === "JsonRecordsError") {
      throw new SpecError((error as Error).message, { cause: error });
    }
    throw error;
  }
  if (items.length === 0 && limit !== 0) throw new SpecError(`${name}: the spec has no records`);
  return { source: "ffhq", component, items };
}

function toItem(record: JsonRecord, component: FfhqComponent, name: string): DatasetItem {
  const { key: id, value, line } = record;
  const where = `${name}:${line}: item ${JSON.stringify(id)}`;
  const bad = (field: string, want: string, found: unknown): never => {
    throw new SpecError(
      `${where} field ${field}: expected ${want}, found ${
        found === undefined ? "nothing (field missing)" : JSON.stringify(found)
      }`,
    );
  };
  const rec = value as Record<string, unknown>;
  const category = rec.category;
  if (typeof category !== "string" || !CATEGORIES.has(category)) {
    bad("category", `"training" or "validation"`, category);
  }
  const part = rec[component];
  if (typeof part !== "object" || part === null || Array.isArray(part)) {
    bad(component, "an object", part);
  }
  const p = part as Record<string, unknown>;
  const f = (k: string) => `${component}.${k}`;

  const url = p.file_url;
  if (typeof url !== "string") bad(f("file_url"), "an http(s) URL", url);
  const urlWhy = badUrlReason(url as string);
  if (urlWhy) bad(f("file_url"), `an http(s) URL (${urlWhy})`, url);

  const path = p.file_path;
  if (typeof path !== "string") bad(f("file_path"), "a relative path", path);
  const pathWhy = unsafePathReason(path as string);
  if (pathWhy) bad(f("file_path"), `a relative path without '..' (${pathWhy})`, path);

  const size = p.file_size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    bad(f("file_size"), "a non-negative integer", size);
  }
  const md5 = p.file_md5;
  if (!isMd5(md5)) bad(f("file_md5"), "32 hex digits", md5);

  let pixelSize: [number, number] | null = null;
  if (p.pixel_size !== undefined) {
    const ps = p.pixel_size;
    if (
      !Array.isArray(ps) || ps.length !== 2 ||
      !ps.every((v) => Number.isSafeInteger(v) && v > 0)
    ) {
      bad(f("pixel_size"), "[width, height] of positive integers", ps);
    }
    pixelSize = [(ps as number[])[0], (ps as number[])[1]];
  }
  let pixelMd5: string | null = null;
  if (p.pixel_md5 !== undefined) {
    if (!isMd5(p.pixel_md5)) bad(f("pixel_md5"), "32 hex digits", p.pixel_md5);
    pixelMd5 = (p.pixel_md5 as string).toLowerCase();
  }
  return {
    id,
    url: url as string,
    path: path as string,
    size: size as number,
    md5: (md5 as string).toLowerCase(),
    pixel_size: pixelSize,
    pixel_md5: pixelMd5,
    category: category as string,
  };
}

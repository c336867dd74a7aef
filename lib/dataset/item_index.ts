/**
 * The compact item index every source (FFHQ spec, local folder, URL list) is turned into: one
 * entry per image with where to get it, what it must hash to, and its category. Plus the checks
 * shared by the sources and a byte encoding (JSON lines) for storing the index as an object.
 *
 * @module
 */

import { DownloadError } from "../net/download_error.ts";
import type { ArchiveMember } from "./archive_member.ts";

/** One image of a dataset. */
export interface DatasetItem {
  /** Stable id: the FFHQ record key ("17"), `split/name` for folders, the row's id for lists. */
  id: string;
  /** http(s) URL of the file, or `null` for a local file (see `local_path`). */
  url: string | null;
  /** Relative path of the file in the familiar layout (`images1024x1024/00000/00017.png`). */
  path: string;
  /** Size in bytes, when the source says. */
  size: number | null;
  /** Lowercase hex MD5 of the file, when the source says. */
  md5: string | null;
  /** `[width, height]` in pixels, when the source says. */
  pixel_size: [number, number] | null;
  /** MD5 of the decoded H×W×3 uint8 RGB pixels, when the source says. */
  pixel_md5: string | null;
  /** `training` / `validation` for FFHQ, the sub-folder (`train`, `val`, `test`) for folders. */
  category: string;
  /** Absolute path of a local file to import without HTTP (folder sources only). */
  local_path?: string;
  /** The class name of a class-folder dataset (`n01440764`); its index is the package's. */
  class_name?: string;
  /** The image's caption (a tar member `{key}.txt`, a Parquet column). */
  caption?: string;
  /** Other metadata of the image (a tar member `{key}.json`, other Parquet columns). */
  meta?: { [key: string]: unknown };
  /** Where the image's bytes are inside a tar shard or a Parquet file (see archive_member.ts). */
  member?: ArchiveMember;
  /**
   * Why the item cannot be used, found while listing (e.g. two files give the same id, an
   * empty file, a broken link): `fetch-images` fails the item with it, the others go on.
   */
  error?: string;
}

/** Which source an index came from. */
export type SourceKind = (typeof SOURCE_KINDS)[number];

/** Every source kind an index can come from. */
export const SOURCE_KINDS = [
  "ffhq",
  "folder",
  "urls",
  "imagefolder",
  "webdataset",
  "parquet",
] as const;

/** An item index with what it was built from. */
export interface ItemIndex {
  source: SourceKind;
  /** FFHQ component the items describe (`image`, `thumbnail`, `in_the_wild`). */
  component?: string;
  items: DatasetItem[];
}

/** Raised for a source that cannot be turned into an item index; names file, line/item, field. */
export class SpecError extends Error {
  override readonly name = "SpecError";
}

const MD5_RE = /^[0-9a-fA-F]{32}$/;

/** Whether `s` is 32 hex digits. */
export function isMd5(s: unknown): s is string {
  return typeof s === "string" && MD5_RE.test(s);
}

/**
 * Returns why a relative file path is unsafe to lay out under a directory (absolute, `..`,
 * backslashes, empty segments), or `null` when it is fine.
 */
export function unsafePathReason(path: string): string | null {
  if (path.length === 0) return "it is empty";
  if (path.startsWith("/") || /^[A-Za-z]:/.test(path)) return "it is absolute";
  if (path.includes("\\")) return "it contains a backslash";
  if (path.includes("\0")) return "it contains a NUL byte";
  const parts = path.split("/");
  if (parts.includes("..")) return "it contains '..'";
  if (parts.some((p) => p === "" || p === ".")) return "it has an empty or '.' segment";
  return null;
}

/** Returns why `url` cannot be downloaded (not an absolute http(s) URL), or `null`. */
export function badUrlReason(url: string): string | null {
  if (!URL.canParse(url)) return "it is not a valid URL";
  const parsed = new URL(url);
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return `only http(s) URLs can be downloaded, found ${parsed.protocol}`;
  }
  return null;
}

/**
 * The URLs to try for `item`, in order: each mirror base URL joined with the item's path, then
 * the item's own URL. A mirror that is not http(s) or an unsafe path fail with a non-retryable
 * `bad_url` {@link DownloadError} naming them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const item: DatasetItem = {
 *   id: "17",
 *   url: "https://drive.google.com/uc?id=1abc",
 *   path: "images1024x1024/00000/00017.png",
 *   size: null,
 *   md5: null,
 *   pixel_size: null,
 *   pixel_md5: null,
 *   category: "training",
 * };
 * assert.deepEqual(candidateUrls(item, ["http://127.0.0.1:8080/ffhq"]), [
 *   "http://127.0.0.1:8080/ffhq/images1024x1024/00000/00017.png",
 *   "https://drive.google.com/uc?id=1abc",
 * ]);
 * ```
 */
export function candidateUrls(item: DatasetItem, mirrors: readonly string[] = []): string[] {
  const out: string[] = [];
  if (mirrors.length > 0) {
    const why = unsafePathReason(item.path);
    if (why) {
      throw new DownloadError(
        "bad_url",
        `item ${item.id}: file_path ${JSON.stringify(item.path)} cannot be used: ${why}`,
      );
    }
  }
  for (const mirror of mirrors) {
    const why = badUrlReason(mirror);
    if (why) {
      throw new DownloadError("bad_url", `mirror ${JSON.stringify(mirror)}: ${why}`, {
        url: mirror,
      });
    }
    const rel = item.path.split("/").map(encodeURIComponent).join("/");
    out.push(`${mirror.replace(/\/+$/, "")}/${rel}`);
  }
  if (item.url !== null) {
    const why = badUrlReason(item.url);
    if (why) {
      throw new DownloadError("bad_url", `item ${item.id}: ${JSON.stringify(item.url)}: ${why}`, {
        url: item.url,
      });
    }
    out.push(item.url);
  }
  return out;
}

const FORMAT = "latentforge.item-index";
const VERSION = 1;

/**
 * Encodes an index as JSON lines: a header line, then one item per line, so a reader can stream
 * it and a person can `head` it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const item: DatasetItem = {
 *   id: "17",
 *   url: "https://drive.google.com/uc?id=1abc",
 *   path: "images1024x1024/00000/00017.png",
 *   size: null,
 *   md5: null,
 *   pixel_size: null,
 *   pixel_md5: null,
 *   category: "training",
 * };
 * const bytes = encodeItemIndex({ source: "ffhq", component: "image", items: [item] });
 * assert.deepEqual(decodeItemIndex(bytes).items, [item]);
 * ```
 */
export function encodeItemIndex(index: ItemIndex): Uint8Array {
  const header = {
    format: FORMAT,
    version: VERSION,
    source: index.source,
    ...(index.component !== undefined ? { component: index.component } : {}),
    count: index.items.length,
  };
  const lines = [JSON.stringify(header)];
  for (const item of index.items) lines.push(JSON.stringify(item));
  return new TextEncoder().encode(lines.join("\n") + "\n");
}

function fieldError(
  file: string,
  line: number,
  id: string,
  field: string,
  want: string,
  v: unknown,
) {
  return new SpecError(
    `${file}:${line}: item ${JSON.stringify(id)} field ${field}: expected ${want}, found ${
      JSON.stringify(v)
    }`,
  );
}

/** Decodes bytes written by {@link encodeItemIndex}; `file` names the source in errors. */
export function decodeItemIndex(bytes: Uint8Array, file = "item index"): ItemIndex {
  const lines = new TextDecoder().decode(bytes).split("\n");
  if (lines.at(-1) === "") lines.pop();
  const parse = (text: string, n: number) => {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new SpecError(`${file}:${n}: malformed JSON: ${(error as Error).message}`);
    }
  };
  if (lines.length === 0) throw new SpecError(`${file}: empty, expected a header line`);
  const header = parse(lines[0], 1);
  if (header?.format !== FORMAT || header?.version !== VERSION) {
    throw new SpecError(
      `${file}:1: expected header {"format":"${FORMAT}","version":${VERSION},…}, found ${
        lines[0].slice(0, 120)
      }`,
    );
  }
  if (!(SOURCE_KINDS as readonly string[]).includes(header.source)) {
    throw new SpecError(`${file}:1: unknown source ${JSON.stringify(header.source)}`);
  }
  if (header.count !== lines.length - 1) {
    throw new SpecError(`${file}: header says ${header.count} items, found ${lines.length - 1}`);
  }
  const items: DatasetItem[] = [];
  for (let i = 1; i < lines.length; i++) {
    const it = parse(lines[i], i + 1);
    const id = String(it?.id);
    if (typeof it?.id !== "string") throw fieldError(file, i + 1, id, "id", "a string", it?.id);
    if (it.url !== null && typeof it.url !== "string") {
      throw fieldError(file, i + 1, id, "url", "a string or null", it.url);
    }
    if (typeof it.path !== "string") throw fieldError(file, i + 1, id, "path", "a string", it.path);
    if (it.size !== null && !(Number.isSafeInteger(it.size) && it.size >= 0)) {
      throw fieldError(file, i + 1, id, "size", "a byte count or null", it.size);
    }
    if (it.md5 !== null && !isMd5(it.md5)) {
      throw fieldError(file, i + 1, id, "md5", "32 hex digits or null", it.md5);
    }
    if (typeof it.category !== "string") {
      throw fieldError(file, i + 1, id, "category", "a string", it.category);
    }
    if (it.error !== undefined && typeof it.error !== "string") {
      throw fieldError(file, i + 1, id, "error", "a string or absent", it.error);
    }
    items.push(it as DatasetItem);
  }
  return { source: header.source, component: header.component, items };
}

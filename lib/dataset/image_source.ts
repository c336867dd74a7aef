/**
 * Images read where they lie — a file of a dataset folder, a member of a tar shard, a row of a
 * Parquet table — rather than copied into the store: a local dataset is already on disk, and a
 * copy would double it. fetch-images records where each image is and the size and MD5 its
 * listing found; every task that reads the image checks the bytes against them, so a file
 * changed behind the cache's back (same size and time, other bytes) fails its item, named,
 * instead of giving a result under a key that says other bytes. Downloaded images are stored:
 * they are the dataset.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Output } from "../store/records.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { ParquetRow, TarMember } from "./archive_member.ts";
import type { DatasetItem } from "./item_index.ts";
import { readParquetImage, RowGroupCache } from "./parquet_table.ts";
import { readTarMember } from "./tar_shard.ts";

/** Where an image's bytes lie outside the store. */
export type ImageLocation =
  | { kind: "file"; path: string }
  | TarMember
  | (ParquetRow & { column: string });

/** An image read in place: where, and what its bytes must hash to. */
export interface InPlaceImage {
  location: ImageLocation;
  size: number;
  /** Lowercase hex MD5 of the bytes. */
  md5: string;
}

/** Raised when an image's bytes are not those its listing found: the source changed. */
export class SourceChangedError extends Error {
  override readonly name = "SourceChangedError";
}

/** Parquet row groups decoded for reading rows back, shared by the readers of one process. */
const ROW_GROUPS = new RowGroupCache(8);

/**
 * Where the image of an index item lies, when it is read in place (a folder's file, a tar
 * member, a Parquet row); null for an image that is downloaded, or that cannot be used.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const item = {
 *   id: "train/1", url: null, path: "train/1.png", size: 3, md5: "9".repeat(32),
 *   pixel_size: null, pixel_md5: null, category: "train", local_path: "/data/train/1.png",
 * };
 * assert.deepEqual(inPlaceImage(item, "image")?.location, { kind: "file", path: "/data/train/1.png" });
 * ```
 */
export function inPlaceImage(item: DatasetItem, imageColumn: string): InPlaceImage | null {
  if (item.error !== undefined || item.md5 === null || item.size === null) return null;
  const location: ImageLocation | null = item.member?.kind === "tar"
    ? item.member
    : item.member?.kind === "parquet"
    ? { ...item.member, column: imageColumn }
    : item.local_path !== undefined
    ? { kind: "file", path: item.local_path }
    : null;
  return location && { location, size: item.size, md5: item.md5 };
}

/**
 * Reads an image where it lies and checks it against the size and MD5 its listing found; a
 * difference throws {@link SourceChangedError} naming the file, what was expected and found.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/a.png`, "abc");
 *   const image = {
 *     location: { kind: "file", path: `${dir}/a.png` },
 *     size: 3,
 *     md5: "900150983cd24fb0d6963f7d28e17f72",
 *   } as const;
 *   assert.equal((await readInPlace(image)).length, 3);
 *   await Deno.writeTextFile(`${dir}/a.png`, "abd");
 *   await assert.rejects(readInPlace(image), /changed since it was listed/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function readInPlace(image: InPlaceImage): Promise<Uint8Array> {
  const { location } = image;
  const bytes = location.kind === "file"
    ? await Deno.readFile(location.path)
    : location.kind === "tar"
    ? await readTarMember(location)
    : await readParquetImage(location, location.column, ROW_GROUPS);
  const md5 = createHash("md5").update(bytes).digest("hex");
  if (bytes.length !== image.size || md5 !== image.md5) {
    throw new SourceChangedError(
      `${where(location)} changed since it was listed: expected ${image.size} bytes with MD5 ` +
        `${image.md5}, found ${bytes.length} bytes with MD5 ${md5}. Run again to list it anew ` +
        `(if its size and modification time are as before, touch it first)`,
    );
  }
  return bytes;
}

/**
 * An image as fetch-images recorded it, for a decoder: the path of its stored object (read as
 * the store keeps it), or its bytes, read where they lie and checked against their MD5.
 *
 * @example
 * ```ts ignore
 * // verify-sizes, preprocess:
 * const input = await fetchedImage(ctx.store, item.inputs["fetch-images"]);
 * ```
 */
export async function fetchedImage(
  store: ObjectStore,
  fetched: Output,
): Promise<string | Uint8Array> {
  const image = fetched.objects.image;
  if (image !== undefined) return store.path(image);
  const inPlace = (fetched.meta as { in_place?: InPlaceImage }).in_place;
  if (inPlace === undefined) {
    throw new Error("fetch-images recorded neither a stored image nor where one lies");
  }
  return await readInPlace(inPlace);
}

/** The location as a user names it: the file, or the archive and the member's place in it. */
export function where(location: ImageLocation): string {
  switch (location.kind) {
    case "file":
      return location.path;
    case "tar":
      return `${location.file} (the member at byte ${location.offset})`;
    case "parquet":
      return `${location.file} (row ${location.row}, column ${location.column})`;
  }
}

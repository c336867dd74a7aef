/**
 * Whether a copy's file is the spec item it may hold: the same bytes (size and MD5), or other
 * bytes with the same decoded pixels (the spec's `pixel_md5`); otherwise rejected with the
 * reason a user can act on (resized, a JPEG, truncated, undecodable).
 *
 * @module
 */
import type { DatasetItem } from "./item_index.ts";
import { PixelError, readPixelFacts } from "./pixels.ts";
import type { Digests } from "../net/hash_pool.ts";

/** A spec item as far as adoption needs it. */
export type AdoptItem = Pick<
  DatasetItem,
  "id" | "path" | "size" | "md5" | "pixel_size" | "pixel_md5"
>;

/** How a candidate turned out. */
export type Verdict =
  | { kind: "bytes"; file: string }
  | { kind: "pixels"; file: string }
  | { kind: "rejected"; file: string; reason: string };

/** A verified candidate with the digests of the bytes read. */
export interface Checked {
  verdict: Verdict;
  /** Bytes read from the candidate. */
  size: number;
  md5: string;
  sha256: string;
}

/**
 * Judges a candidate from its digests and, when its bytes differ from the spec's, its decoded
 * pixels. `image` is where its bytes are (a path, or the bytes themselves), read only when the
 * pixels must be compared.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const item = { id: "42", path: "00042.png", size: 3, md5: "900150983cd24fb0d6963f7d28e17f72", pixel_size: null, pixel_md5: null };
 * const digests = { size: 3, md5: "900150983cd24fb0d6963f7d28e17f72", sha256: "" };
 * const checked = await judgeCopy("copy/00042.png", item, digests, () => new Uint8Array());
 * assert.deepEqual(checked.verdict, { kind: "bytes", file: "copy/00042.png" });
 * ```
 */
export async function judgeCopy(
  file: string,
  item: AdoptItem,
  digests: Digests & { size: number },
  image: () => string | Uint8Array | Promise<string | Uint8Array>,
  signal?: AbortSignal,
): Promise<Checked> {
  const checked = (verdict: Verdict): Checked => ({ verdict, ...digests });
  if ((item.size === null || digests.size === item.size) && digests.md5 === item.md5) {
    return checked({ kind: "bytes", file });
  }
  if (!item.md5 && !item.pixel_md5) {
    return checked({
      kind: "rejected",
      file,
      reason: "the spec gives neither an MD5 nor a pixel MD5 to check it against",
    });
  }
  const input = await image();
  let facts;
  try {
    facts = await readPixelFacts(input);
  } catch (error) {
    signal?.throwIfAborted();
    // An image that cannot be decoded is a damaged copy: rejected with the reason.
    if (!(error instanceof PixelError)) throw error;
    const sizes = item.size === null
      ? `${digests.size} bytes`
      : `${digests.size} bytes, spec says ${item.size}`;
    const reason = item.size !== null && digests.size < item.size
      ? `truncated or damaged: cannot be decoded (${sizes})`
      : `not a decodable image (${sizes})`;
    return checked({ kind: "rejected", file, reason });
  }
  const want = item.pixel_size;
  if (want && (facts.width !== want[0] || facts.height !== want[1])) {
    return checked({
      kind: "rejected",
      file,
      reason: `${facts.width}×${facts.height}, spec says ${want[0]}×${want[1]}`,
    });
  }
  if (!item.pixel_md5) {
    return checked({
      kind: "rejected",
      file,
      reason: `other bytes (MD5 ${digests.md5}, spec says ${item.md5}) and the spec gives no ` +
        `pixel MD5 to compare the pixels with`,
    });
  }
  if (facts.pixelMd5 === item.pixel_md5.toLowerCase()) {
    return checked({ kind: "pixels", file });
  }
  const jpeg = await isJpeg(input);
  return checked({
    kind: "rejected",
    file,
    reason: jpeg
      ? "a JPEG: its pixels differ from the spec's (lossy copy)"
      : `other pixels (pixel MD5 ${facts.pixelMd5}, spec says ${item.pixel_md5})`,
  });
}

async function isJpeg(input: string | Uint8Array): Promise<boolean> {
  let head: Uint8Array;
  if (typeof input === "string") {
    using f = await Deno.open(input, { read: true });
    head = new Uint8Array(3);
    await f.read(head);
  } else head = input;
  return head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff;
}

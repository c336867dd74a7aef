/**
 * Where a listing finds the digests the previous listing of the same files remembered: an
 * object in the store, named by an alias made of what is listed (the dataset's kind and the
 * folders it reads, resolved), so that a config edit elsewhere — another split, other
 * extensions, another name — keeps the memo, and another dataset on a shared cache has its own.
 *
 * @module
 */
import { resolve } from "node:path";
import { createHash } from "node:crypto";
import { DigestMemo, DigestMemoError } from "./digest_memo.ts";

/** The dataset sections whose files are listed from local folders. */
export type FolderDataset =
  | { kind: "folder"; path: string }
  | { kind: "imagefolder"; splits: Readonly<Record<string, string | { path: string }>> }
  | { kind: string };

/**
 * The alias of the digest memo of `dataset`'s listing, or null for a dataset that is not a
 * local folder (a spec or list of URLs: nothing to remember).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const a = listingMemoName({ kind: "folder", path: "/data/photos" });
 * assert.match(a!, /^listing-digests:[0-9a-f]{64}$/);
 * assert.equal(listingMemoName({ kind: "folder", path: "/data/photos/" }), a);
 * assert.equal(listingMemoName({ kind: "ffhq" }), null);
 * ```
 */
export function listingMemoName(dataset: FolderDataset): string | null {
  let roots: string[];
  if (dataset.kind === "folder" && "path" in dataset) roots = [resolve(dataset.path)];
  else if (dataset.kind === "imagefolder" && "splits" in dataset) {
    roots = Object.keys(dataset.splits).sort().map((split) => {
      const source = dataset.splits[split];
      return `${split}=${resolve(typeof source === "string" ? source : source.path)}`;
    });
  } else return null;
  const what = JSON.stringify({ kind: dataset.kind, roots });
  return `listing-digests:${createHash("sha256").update(what).digest("hex")}`;
}

/**
 * The memo an earlier listing left under `name`, or an empty one: none was left, its object is
 * gone (after `gc`), or an earlier latentforge wrote it in another format — then `log` says so
 * once and every file is read.
 *
 * @example
 * ```ts ignore
 * // fetch-json:
 * const memo = await previousDigests(name, {
 *   lookup: ctx.lookupAlias,
 *   get: (digest) => ctx.store.get(digest),
 *   log: ctx.log,
 * });
 * ```
 */
export async function previousDigests(
  name: string,
  { lookup, get, log }: {
    lookup: (name: string) => Promise<{ digest: string } | null>;
    get: (digest: string) => Promise<Uint8Array>;
    log: (line: string) => void;
  },
): Promise<DigestMemo> {
  const found = await lookup(name);
  if (found === null) return DigestMemo.empty();
  try {
    return DigestMemo.decode(await get(found.digest));
  } catch (e) {
    if (!(e instanceof DigestMemoError)) throw e;
    log(`the digests of the previous listing are not used (${e.message}): every file is read`);
    return DigestMemo.empty();
  }
}

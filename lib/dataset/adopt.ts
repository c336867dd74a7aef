/**
 * Adopting the copies people already have (`dataset.adopt`): local folders and `.zip`
 * archives are listed, each spec item is matched to the files that may hold it, and a
 * candidate is verified against the spec before it is taken:
 *
 * - same size and MD5 → adopted by bytes;
 * - other bytes but the same decoded pixels (the spec's `pixel_md5`, a re-encoded PNG) →
 *   adopted by pixels;
 * - anything else (resized, JPEG, truncated, undecodable) → rejected, with the reason.
 *
 * Matching: an item's candidates are, best first, the files whose path inside the copy ends
 * with the item's `file_path` (`…/images1024x1024/00000/00042.png`), then the files with its
 * name (`00042.png`) anywhere in the copy (flat or otherwise nested), then image files (by the
 * endings dataset folders use too) with its stem (`00042.jpg`). They are tried in that order
 * until one is adopted, so a damaged copy in one place does not hide a good one elsewhere. File
 * names are assumed unique within a spec, as FFHQ's are. Files that are no item's candidate are
 * "extra".
 * The listing is in `adopt_listing.ts`, the reading and hashing in `adopt_read.ts`, the verdict
 * in `adopt_check.ts`.
 *
 * The copies are only read: files are opened read-only, zip entries are streamed out of the
 * archive, and nothing in them is ever changed, moved or deleted.
 *
 * @module
 */
import { basename } from "node:path";
import { type AdoptFile, listCopies } from "./adopt_listing.ts";
import { type AdoptItem, type Checked, judgeCopy } from "./adopt_check.ts";
import { collectBytes, CopyReadError, hashCopy } from "./adopt_read.ts";
import { imageNameTest } from "./image_extensions.ts";
import type { ZipArchive } from "./zip_archive.ts";
import type { Digests, HashPool } from "../net/hash_pool.ts";
import type { ObjectStore } from "../store/objects.ts";
import { removeIfPresent } from "../base/fs.ts";

/** What {@link AdoptSources.adopt} found for one item. */
export interface Adoption {
  /** The adopted candidate, or `null` when none could be (the item is then downloaded). */
  adopted: (Checked & { by: "bytes" | "pixels"; kept?: string }) | null;
  /** Candidates that were read and not taken, with why. */
  rejected: { file: string; reason: string }[];
}

/** Files whose name ends in an image extension are matched to items by their stem too. */
const isImage = imageNameTest();

/**
 * The opened copies: every file they hold, the archives kept open for streaming, and the
 * matching of spec items to candidate files. Close it when done.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.mkdir(`${dir}/images1024x1024/00000`, { recursive: true });
 *   await Deno.writeTextFile(`${dir}/images1024x1024/00000/00042.png`, "a");
 *   await Deno.writeTextFile(`${dir}/00042.jpg`, "b");
 *   await Deno.writeTextFile(`${dir}/notes.txt`, "c");
 *   const sources = await AdoptSources.open([dir]);
 *   try {
 *     const item = { path: "images1024x1024/00000/00042.png" };
 *     const files = sources.candidates(item).map((f) => f.rel);
 *     assert.deepEqual(files, ["images1024x1024/00000/00042.png", "00042.jpg"]);
 *     assert.deepEqual(sources.extras([item]).map((f) => f.rel), ["notes.txt"]);
 *   } finally {
 *     sources.close();
 *   }
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class AdoptSources {
  /** The sources as configured, resolved to absolute paths. */
  readonly paths: string[];
  /** Every file, in listing order. */
  readonly files: readonly AdoptFile[];
  /** sha256 of the listing (paths, sizes, modification times): changes when the copies do. */
  readonly fingerprint: string;
  readonly #zips: ZipArchive[];
  readonly #byName = new Map<string, AdoptFile[]>();
  readonly #byStem = new Map<string, AdoptFile[]>();

  private constructor(
    paths: string[],
    files: AdoptFile[],
    zips: ZipArchive[],
    fingerprint: string,
  ) {
    this.paths = paths;
    this.files = files;
    this.#zips = zips;
    this.fingerprint = fingerprint;
    for (const f of files) {
      const name = basename(f.rel);
      push(this.#byName, name, f);
      const dot = name.lastIndexOf(".");
      if (dot > 0 && isImage(name)) {
        push(this.#byStem, name.slice(0, dot), f);
      }
    }
  }

  /**
   * Lists the folders (recursively) and the archives' directories. A source that does not
   * exist or cannot be read fails with an {@link AdoptSourceError} naming it; `label` names
   * the config field in that message.
   */
  static async open(
    sources: readonly string[],
    { label = "dataset.adopt" }: { label?: string } = {},
  ): Promise<AdoptSources> {
    const { paths, files, zips, fingerprint } = await listCopies(sources, { label });
    return new AdoptSources(paths, files, zips, fingerprint);
  }

  /**
   * The files that may hold `item`, best first: those whose path ends with the item's path,
   * then the others with its file name, then image files with its stem.
   */
  candidates(item: Pick<AdoptItem, "path">): AdoptFile[] {
    const name = basename(item.path);
    const byName = this.#byName.get(name) ?? [];
    const exact = (f: AdoptFile) => f.rel === item.path || f.rel.endsWith(`/${item.path}`);
    const dot = name.lastIndexOf(".");
    const byStem = dot > 0 ? this.#byStem.get(name.slice(0, dot)) ?? [] : [];
    return [
      ...byName.filter(exact),
      ...byName.filter((f) => !exact(f)),
      ...byStem.filter((f) => basename(f.rel) !== name),
    ];
  }

  /** Files that are no item's candidate. */
  extras(items: Iterable<Pick<AdoptItem, "path">>): AdoptFile[] {
    const claimed = new Set<AdoptFile>();
    for (const item of items) for (const f of this.candidates(item)) claimed.add(f);
    return this.files.filter((f) => !claimed.has(f));
  }

  /** Streams a file's bytes (from disk, or out of its archive). */
  async *read(file: AdoptFile, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    if (file.entry) {
      yield* this.#zips[file.zip!].read(file.entry, signal);
      return;
    }
    using handle = await Deno.open(file.path!, { read: true });
    for await (const chunk of handle.readable) {
      signal?.throwIfAborted();
      yield chunk;
    }
  }

  /**
   * Verifies `file` as a copy of `item`. With `keepAt`, the bytes read are also written to that
   * path (a temp file in the store), so what was verified is exactly what gets stored; without
   * it, nothing is written (a plan). Reading or decoding problems become rejections with the
   * reason; only an interruption throws.
   */
  async check(
    file: AdoptFile,
    item: AdoptItem,
    { keepAt, hashPool, signal }: { keepAt?: string; hashPool?: HashPool; signal?: AbortSignal } =
      {},
  ): Promise<Checked> {
    let digests: Digests & { size: number };
    try {
      digests = await hashCopy(file, { chunks: () => this.read(file, signal), keepAt, hashPool });
    } catch (error) {
      signal?.throwIfAborted();
      // Only the copy's own faults reject it; a store that cannot be written stops the run.
      if (!(error instanceof CopyReadError)) throw error;
      return {
        verdict: { kind: "rejected", file: file.label, reason: error.message },
        size: 0,
        md5: "",
        sha256: "",
      };
    }
    const image = () => keepAt ?? file.path ?? collectBytes(this.read(file, signal));
    return await judgeCopy(file.label, item, digests, image, signal);
  }

  /**
   * Tries the item's candidates, best first, until one is adopted. With `tempPath`, each
   * candidate is copied to a fresh temp path while it is read; the adopted one's copy is
   * returned (`kept`) and the rejected ones' are removed. Without it nothing is written: the
   * same decisions, for a plan.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { createHash } from "node:crypto";
   * const dir = await Deno.makeTempDir();
   * try {
   *   const bytes = new TextEncoder().encode("the bytes of 00042.png");
   *   const md5 = createHash("md5").update(bytes).digest("hex");
   *   const item = {
   *     id: "42",
   *     path: "images1024x1024/00000/00042.png",
   *     size: bytes.length,
   *     md5,
   *     pixel_size: null,
   *     pixel_md5: null,
   *   };
   *   await Deno.mkdir(`${dir}/copy`);
   *   await Deno.writeFile(`${dir}/copy/00042.png`, bytes);
   *   const sources = await AdoptSources.open([`${dir}/copy`]);
   *   try {
   *     // Without a temp path nothing is written: the decision a plan shows.
   *     const got = await sources.adopt(item);
   *     assert.equal(got.adopted?.by, "bytes");
   *     assert.equal(got.adopted?.kept, undefined);
   *     assert.deepEqual(got.rejected, []);
   *   } finally {
   *     sources.close();
   *   }
   * } finally {
   *   await Deno.remove(dir, { recursive: true });
   * }
   * ```
   */
  async adopt(
    item: AdoptItem,
    { tempPath, hashPool, signal }: {
      tempPath?: () => string;
      hashPool?: HashPool;
      signal?: AbortSignal;
    } = {},
  ): Promise<Adoption> {
    const rejected: { file: string; reason: string }[] = [];
    for (const file of this.candidates(item)) {
      const keepAt = tempPath?.();
      let checked: Checked;
      try {
        checked = await this.check(file, item, { keepAt, hashPool, signal });
      } catch (error) {
        if (keepAt) await removeIfPresent(keepAt);
        throw error;
      }
      if (checked.verdict.kind === "rejected") {
        if (keepAt) await removeIfPresent(keepAt);
        rejected.push({ file: checked.verdict.file, reason: checked.verdict.reason });
        continue;
      }
      return { adopted: { ...checked, by: checked.verdict.kind, kept: keepAt }, rejected };
    }
    return { adopted: null, rejected };
  }

  /** Closes the archives. */
  close(): void {
    for (const z of this.#zips) z.close();
  }
}

/** What {@link adoptIntoStore} did for one item. */
export interface Taken {
  /** The stored object, when a copy was adopted; `null` when the item must be downloaded. */
  stored: { digest: string; md5: string; size: number } | null;
  /** What to record for the reconciliation, or `null` when the copies hold no candidate. */
  outcome:
    | { adopted: "bytes" | "pixels"; file: string }
    | { rejected: { file: string; reason: string }[] }
    | null;
}

/**
 * Takes an item from the copies into the store when one of its candidates is adopted: the
 * candidate is copied to a temp file in the store while it is verified, and that verified
 * copy becomes the object (fsynced, renamed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { ObjectStore } from "../store/objects.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const bytes = new TextEncoder().encode("the bytes of 00042.png");
 *   const md5 = createHash("md5").update(bytes).digest("hex");
 *   const item = {
 *     id: "42",
 *     path: "images1024x1024/00000/00042.png",
 *     size: bytes.length,
 *     md5,
 *     pixel_size: null,
 *     pixel_md5: null,
 *   };
 *   await Deno.mkdir(`${dir}/copy`);
 *   await Deno.writeFile(`${dir}/copy/00042.png`, bytes);
 *   const store = new ObjectStore(`${dir}/cache`);
 *   const sources = await AdoptSources.open([`${dir}/copy`]);
 *   try {
 *     const { stored, outcome } = await adoptIntoStore(sources, item, { store });
 *     assert.deepEqual(outcome, { adopted: "bytes", file: `${dir}/copy/00042.png` });
 *     assert.deepEqual(await store.get(stored!.digest), bytes);
 *   } finally {
 *     sources.close();
 *   }
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function adoptIntoStore(
  sources: AdoptSources,
  item: AdoptItem,
  { store, hashPool, signal }: { store: ObjectStore; hashPool?: HashPool; signal?: AbortSignal },
): Promise<Taken> {
  if (sources.candidates(item).length === 0) return { stored: null, outcome: null };
  const got = await sources.adopt(item, {
    tempPath: () => store.tempPath("adopt"),
    hashPool,
    signal,
  });
  if (!got.adopted) return { stored: null, outcome: { rejected: got.rejected } };
  const { kept, sha256, md5, size, by, verdict } = got.adopted;
  const digest = await store.putFile(kept!, sha256);
  return { stored: { digest, md5, size }, outcome: { adopted: by, file: verdict.file } };
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

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
 * name (`00042.png`) anywhere in the copy (flat or otherwise nested), then image files with its
 * stem (`00042.jpg`). They are tried in that order until one is adopted, so a damaged copy in
 * one place does not hide a good one elsewhere. File names are assumed unique within a spec,
 * as FFHQ's are. Files that are no item's candidate are "extra".
 *
 * The copies are only read: files are opened read-only, zip entries are streamed out of the
 * archive, and nothing in them is ever changed, moved or deleted.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, join, resolve } from "node:path";
import type { DatasetItem } from "./item_index.ts";
import { readPixelFacts } from "./pixels.ts";
import { ZipArchive, ZipArchiveError, type ZipEntry } from "./zip_archive.ts";
import type { Digests, HashPool } from "../net/hash_pool.ts";
import type { ObjectStore } from "../store/objects.ts";
import { removeIfPresent } from "../base/fs.ts";

/** Raised when an adopt source cannot be opened (missing, unreadable, not a zip archive). */
export class AdoptSourceError extends Error {
  override readonly name = "AdoptSourceError";
}

/** One file of a local copy. */
export interface AdoptFile {
  /** How the user finds it: `/data/ffhq/images1024x1024/00000/00042.png`, `/data/ffhq.zip!00042.png`. */
  label: string;
  /** Its path inside the copy (`images1024x1024/00000/00042.png`, `00042.png`). */
  rel: string;
  /** Size in bytes as listed. */
  size: number;
  /** The file on disk, for a folder's file. */
  path?: string;
  /** The archive entry, for a zip's file. */
  entry?: ZipEntry;
  /** Index of the archive in the sources, for a zip's file. */
  zip?: number;
}

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

/** What {@link AdoptSources.adopt} found for one item. */
export interface Adoption {
  /** The adopted candidate, or `null` when none could be (the item is then downloaded). */
  adopted: (Checked & { by: "bytes" | "pixels"; kept?: string }) | null;
  /** Candidates that were read and not taken, with why. */
  rejected: { file: string; reason: string }[];
}

const BLOCK = 1 << 20;
const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"]);

/**
 * The opened copies: every file they hold, the archives kept open for streaming, and the
 * matching of spec items to candidate files. Close it when done.
 *
 * @example
 * ```ts
 * const sources = await AdoptSources.open(["/data/ffhq.zip", "/data/images1024x1024"]);
 * try {
 *   const files = sources.candidates({ path: "images1024x1024/00000/00042.png" });
 * } finally {
 *   sources.close();
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
      if (dot > 0 && IMAGE_EXTENSIONS.has(name.slice(dot).toLowerCase())) {
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
    const paths = sources.map((p) => resolve(p));
    const files: AdoptFile[] = [];
    const zips: ZipArchive[] = [];
    const listing = createHash("sha256");
    try {
      for (const [i, path] of paths.entries()) {
        let info: Deno.FileInfo;
        try {
          info = await Deno.stat(path);
        } catch (error) {
          throw new AdoptSourceError(
            `${label}[${i}]: ${path}: ${
              error instanceof Deno.errors.NotFound
                ? "no such folder or .zip archive"
                : error instanceof Deno.errors.PermissionDenied
                ? "permission denied (adopting needs read access)"
                : "cannot be read"
            }`,
          );
        }
        listing.update(`source\t${path}\n`);
        if (info.isDirectory) {
          for await (const f of walk(path, path, new Set())) {
            files.push(f);
            listing.update(`${f.rel}\t${f.size}\t${f.mtime}\n`);
          }
        } else {
          let zip: ZipArchive;
          try {
            zip = await ZipArchive.open(path);
          } catch (error) {
            if (error instanceof ZipArchiveError) {
              throw new AdoptSourceError(`${label}[${i}]: ${error.message}`);
            }
            throw error;
          }
          zips.push(zip);
          const z = zips.length - 1;
          listing.update(`zip\t${info.size}\t${info.mtime?.getTime()}\n`);
          for (const entry of zip.entries) {
            if (ignored(entry.name)) continue;
            files.push({
              label: `${path}!${entry.name}`,
              rel: entry.name,
              size: entry.size,
              entry,
              zip: z,
            });
          }
        }
      }
    } catch (error) {
      for (const z of zips) z.close();
      throw error;
    }
    return new AdoptSources(paths, files, zips, listing.digest("hex"));
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
      digests = await this.#hash(file, keepAt, hashPool, signal);
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
    const checked = (verdict: Verdict): Checked => ({ verdict, ...digests });
    if ((item.size === null || digests.size === item.size) && digests.md5 === item.md5) {
      return checked({ kind: "bytes", file: file.label });
    }
    if (!item.md5 && !item.pixel_md5) {
      return checked({
        kind: "rejected",
        file: file.label,
        reason: "the spec gives neither an MD5 nor a pixel MD5 to check it against",
      });
    }
    const input = keepAt ?? file.path ?? await this.#bytes(file, signal);
    let facts;
    try {
      facts = await readPixelFacts(input);
    } catch {
      signal?.throwIfAborted();
      const sizes = item.size === null
        ? `${digests.size} bytes`
        : `${digests.size} bytes, spec says ${item.size}`;
      const reason = item.size !== null && digests.size < item.size
        ? `truncated or damaged: cannot be decoded (${sizes})`
        : `not a decodable image (${sizes})`;
      return checked({ kind: "rejected", file: file.label, reason });
    }
    const want = item.pixel_size;
    if (want && (facts.width !== want[0] || facts.height !== want[1])) {
      return checked({
        kind: "rejected",
        file: file.label,
        reason: `${facts.width}×${facts.height}, spec says ${want[0]}×${want[1]}`,
      });
    }
    if (!item.pixel_md5) {
      return checked({
        kind: "rejected",
        file: file.label,
        reason: `other bytes (MD5 ${digests.md5}, spec says ${item.md5}) and the spec gives no ` +
          `pixel MD5 to compare the pixels with`,
      });
    }
    if (facts.pixelMd5 === item.pixel_md5.toLowerCase()) {
      return checked({ kind: "pixels", file: file.label });
    }
    const jpeg = await isJpeg(input);
    return checked({
      kind: "rejected",
      file: file.label,
      reason: jpeg
        ? "a JPEG: its pixels differ from the spec's (lossy copy)"
        : `other pixels (pixel MD5 ${facts.pixelMd5}, spec says ${item.pixel_md5})`,
    });
  }

  /**
   * Tries the item's candidates, best first, until one is adopted. With `tempPath`, each
   * candidate is copied to a fresh temp path while it is read; the adopted one's copy is
   * returned (`kept`) and the rejected ones' are removed. Without it nothing is written: the
   * same decisions, for a plan.
   *
   * @example
   * ```ts
   * import type { ObjectStore } from "../store/objects.ts";
   * declare const sources: AdoptSources;
   * declare const item: AdoptItem;
   * declare const store: ObjectStore;
   * const got = await sources.adopt(item, { tempPath: () => store.tempPath("adopt") });
   * if (got.adopted) await store.putFile(got.adopted.kept!, got.adopted.sha256);
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

  async #hash(
    file: AdoptFile,
    keepAt: string | undefined,
    hashPool: HashPool | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Digests & { size: number }> {
    if (file.path) {
      // A folder's file: the kernel copies it, and the copy (or, for a plan, the file itself)
      // is hashed from the page cache on the hashing thread.
      const target = keepAt ?? file.path;
      if (keepAt) {
        try {
          await Deno.copyFile(file.path, keepAt);
        } catch (error) {
          // Whose fault: the copy's (unreadable, gone) or the store's (full, read-only)?
          await readable(file.path);
          throw error;
        }
      } else await readable(file.path);
      const size = (await Deno.stat(target)).size;
      if (hashPool) return { ...(await hashPool.begin(target, size).digest()), size };
      const md5 = createHash("md5");
      const sha256 = createHash("sha256");
      using handle = await Deno.open(target, { read: true });
      for await (const chunk of handle.readable) {
        md5.update(chunk);
        sha256.update(chunk);
      }
      return { md5: md5.digest("hex"), sha256: sha256.digest("hex"), size };
    }
    const session = hashPool?.begin();
    const md5 = session ? null : createHash("md5");
    const sha256 = session ? null : createHash("sha256");
    let size = 0;
    const out = keepAt ? await Deno.open(keepAt, { write: true, createNew: true }) : null;
    // Inflated data arrives in small pieces: they are gathered into blocks of up to 1 MiB, so
    // writes and hand-overs to the hashing thread stay few.
    let block = new Uint8Array(Math.min(BLOCK, Math.max(1, file.size)));
    let filled = 0;
    const flush = async () => {
      if (filled === 0) return;
      const full = block.subarray(0, filled);
      if (out) {
        let written = 0;
        while (written < full.length) written += await out.write(full.subarray(written));
      }
      if (session) {
        // The block's buffer moves to the hashing thread; the next block is a new one.
        session.update(full);
        block = new Uint8Array(block.length);
      } else {
        md5!.update(full);
        sha256!.update(full);
      }
      filled = 0;
    };
    try {
      for await (const chunk of readingCopy(this.read(file, signal))) {
        size += chunk.length;
        let at = 0;
        while (at < chunk.length) {
          if (filled === block.length) {
            await flush();
            if (block.length < BLOCK) block = new Uint8Array(BLOCK);
          }
          const n = Math.min(chunk.length - at, block.length - filled);
          block.set(chunk.subarray(at, at + n), filled);
          filled += n;
          at += n;
        }
      }
      await flush();
    } catch (error) {
      session?.drop();
      throw error;
    } finally {
      out?.close();
    }
    if (session) return { ...(await session.digest()), size };
    return { md5: md5!.digest("hex"), sha256: sha256!.digest("hex"), size };
  }

  async #bytes(file: AdoptFile, signal?: AbortSignal): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let n = 0;
    for await (const chunk of this.read(file, signal)) {
      parts.push(chunk);
      n += chunk.length;
    }
    const out = new Uint8Array(n);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/**
 * Checks, before anything runs, that every copy exists and can be read (a folder, or a file:
 * whether it is a zip archive is told when it is opened). Throws an {@link AdoptSourceError}
 * naming the first that cannot.
 *
 * @example
 * ```ts
 * await checkAdoptSources([await Deno.makeTempDir()]);
 * ```
 */
export async function checkAdoptSources(
  sources: readonly string[],
  { label = "dataset.adopt" }: { label?: string } = {},
): Promise<void> {
  for (const [i, source] of sources.entries()) {
    const path = resolve(source);
    const where = path === source ? path : `${source} (${path})`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (error) {
      throw new AdoptSourceError(
        `${label}[${i}]: ${where}: ${
          error instanceof Deno.errors.NotFound
            ? "no such folder or .zip archive"
            : "cannot be read (adopting needs read access)"
        }`,
      );
    }
    if (!info.isDirectory && !info.isFile) {
      throw new AdoptSourceError(`${label}[${i}]: ${where}: expected a folder or a .zip archive`);
    }
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
 * import { ObjectStore } from "../store/objects.ts";
 * declare const sources: AdoptSources;
 * declare const item: AdoptItem;
 * const store = new ObjectStore("cache");
 * const { stored, outcome } = await adoptIntoStore(sources, item, { store });
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

/** macOS resource forks and Finder files are not part of any copy. */
function ignored(rel: string): boolean {
  const parts = rel.split("/");
  return parts.includes("__MACOSX") || parts.some((p) => p === ".DS_Store" || p.startsWith("._"));
}

interface Listed extends AdoptFile {
  mtime: number;
}

async function* walk(root: string, dir: string, seen: Set<string>): AsyncGenerator<Listed> {
  // Symlinked folders are followed once each, so a link loop cannot recurse forever.
  const real = await Deno.realPath(dir);
  if (seen.has(real)) return;
  seen.add(real);
  const entries = await Array.fromAsync(Deno.readDir(dir));
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const e of entries) {
    const path = join(dir, e.name);
    const rel = path.slice(root.length + 1);
    if (ignored(rel)) continue;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch {
      continue;
    }
    if (info.isDirectory) yield* walk(root, path, seen);
    else if (info.isFile) {
      yield { label: path, rel, size: info.size, path, mtime: info.mtime?.getTime() ?? 0 };
    }
  }
}

/** A fault of the copy being read (not of the store being written): the copy is rejected. */
class CopyReadError extends Error {
  override readonly name = "CopyReadError";
}

function readFailure(error: unknown): CopyReadError {
  if (error instanceof ZipArchiveError) {
    return new CopyReadError(error.message.slice(error.message.indexOf(": ") + 2));
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new CopyReadError("cannot be read: permission denied");
  }
  if (error instanceof Deno.errors.NotFound) {
    return new CopyReadError("disappeared after the copy was listed");
  }
  return new CopyReadError(`cannot be read (${(error as Error)?.name ?? "error"})`);
}

/** Throws a {@link CopyReadError} unless the file can be opened and read. */
async function readable(path: string): Promise<void> {
  try {
    using f = await Deno.open(path, { read: true });
    await f.read(new Uint8Array(1));
  } catch (error) {
    throw readFailure(error);
  }
}

/** Passes a copy's chunks on, turning its read faults into {@link CopyReadError}s. */
async function* readingCopy(chunks: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    for (;;) {
      let step: IteratorResult<Uint8Array>;
      try {
        step = await chunks.next();
      } catch (error) {
        throw readFailure(error);
      }
      if (step.done) return;
      yield step.value;
    }
  } finally {
    // Closes the copy's file handle when the reader stops early (a write that failed).
    await chunks.return(undefined);
  }
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

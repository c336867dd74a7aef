/**
 * Files a task declares (models, a dataset spec, a labels list): what identifies their content
 * in a plan, and bringing them into the store for a run. The identity joins every key of the
 * task, in the plan and in the run alike:
 *
 * - a local file: its sha256, remembered in the records by path, size, mtime and inode, so
 *   planning stays fast and a touched but unchanged file costs one hash;
 * - a URL with a pinned sha256: that sha256; with a pinned MD5 only: `md5:<hex>`;
 * - a URL without a pin: unknown until fetched; a run fetches it and uses its sha256, a plan
 *   says that what depends on it may rerun.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import type { ObjectStore } from "../store/objects.ts";
import { type FileDigest, KEYS, type Records, type RecordWriter } from "../store/records.ts";
import type { ObjectAliases } from "../store/aliases.ts";
import { hashJson } from "../store/canonical.ts";
import { fetchSource, type FileSourceSpec } from "../net/fetch_source.ts";
import { retry } from "../base/retry.ts";
import { getPath } from "./config.ts";
import type { FileDownloadOptions, RetryPolicy, StoredFile } from "./task.ts";

/** Raised for a declared file that is missing, unreadable or not what its pins say. */
export class FileInputError extends Error {
  override readonly name = "FileInputError";
}

/** A declared file as planned. */
export interface PlannedFile {
  /** The config field that names it (`model.decoder`), for messages. */
  field: string;
  source: FileSourceSpec;
  /** What identifies its content in keys; null for a URL without a pin (unknown until fetched). */
  identity: string | null;
  /** The local file's absolute path, for a `{ path }` source. */
  path?: string;
}

/** Marks an input digest that is unknown until the file is fetched. */
export const UNKNOWN_FILE = "unknown-until-fetched:";

/**
 * Resolves the files a task declares (input name → config field) to their identities.
 *
 * @example
 * ```ts
 * import { openRecords } from "../store/records.ts";
 *
 * const records = await openRecords("cache");
 * const planned = await planFiles({ decoder: "model.decoder" }, {
 *   model: { decoder: { url: "https://example.org/vae.onnx", sha256: "ab".repeat(32) } },
 * }, records);
 * planned.decoder.identity; // "abab…"
 * ```
 */
export async function planFiles(
  declared: Record<string, string | undefined>,
  config: unknown,
  records: Records,
): Promise<Record<string, PlannedFile>> {
  const out: Record<string, PlannedFile> = {};
  for (const [name, field] of Object.entries(declared)) {
    if (field === undefined) continue;
    const source = getPath(config, field) as FileSourceSpec | undefined | null;
    if (!source || typeof source !== "object") {
      throw new FileInputError(
        `${field}: expected a file source ({ path } or { url }), found none`,
      );
    }
    if (source.path !== undefined) {
      const path = resolve(source.path);
      const digest = await localDigest(path, field, records, source.md5 !== undefined);
      if (source.size !== undefined && source.size !== digest.size) {
        throw new FileInputError(
          `${field}: ${path}: expected ${source.size} bytes, found ${digest.size}`,
        );
      }
      check(field, path, "sha256", source.sha256, digest.sha256);
      check(field, path, "MD5", source.md5, digest.md5);
      out[name] = { field, source, identity: digest.sha256, path };
    } else if (source.url !== undefined) {
      const identity = source.sha256 ?? (source.md5 ? `md5:${source.md5}` : null);
      out[name] = { field, source, identity };
    } else {
      throw new FileInputError(`${field}: expected a path or a url`);
    }
  }
  return out;
}

/** The input digests of planned files: their identities, or the unknown marker. */
export function fileInputDigests(planned: Record<string, PlannedFile>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, f] of Object.entries(planned)) {
    out[name] = f.identity ?? `${UNKNOWN_FILE}${f.source.url}`;
  }
  return out;
}

/** What {@link storeFiles} gives. */
export interface FilesInStore {
  /** Input digests for keys: the planned identities, or the fetched sha256 where none was known. */
  inputs: Record<string, string>;
  /** The files in the store, by input name. */
  stored: Record<string, StoredFile>;
}

/**
 * Brings planned files into the store for a run: a local file is copied in (unless its sha256
 * is there already), a URL is downloaded and verified unless its pinned sha256, or the object
 * an earlier download recorded for its MD5, is there already. Which objects a task used is
 * recorded (so gc keeps them), and the MD5 of a downloaded file becomes an alias.
 */
export async function storeFiles(
  task: string,
  planned: Record<string, PlannedFile>,
  { store, records, writer, aliases, signal, download = {}, policy, log }: {
    store: ObjectStore;
    records: Records;
    writer: RecordWriter;
    aliases: ObjectAliases;
    signal: AbortSignal;
    download?: FileDownloadOptions;
    policy: RetryPolicy;
    /** Told how to pin a URL that has no pin. */
    log: (line: string) => void;
  },
): Promise<FilesInStore> {
  const inputs: Record<string, string> = {};
  const stored: Record<string, StoredFile> = {};
  for (const [name, f] of Object.entries(planned)) {
    let digest: string;
    if (f.path !== undefined) {
      digest = f.identity!;
      if (!(await store.has(digest))) await copyIn(store, f.path, f.field, digest);
    } else {
      const md5Alias = f.source.md5 ? `md5:${f.source.md5}` : null;
      const known = f.source.sha256 && await store.has(f.source.sha256)
        ? f.source.sha256
        : md5Alias
        ? (await aliases.lookup(md5Alias))?.digest
        : undefined;
      if (known) digest = known;
      else {
        const fetched = await retry(
          () => fetchSource(store, f.source, f.field, { signal, ...download }),
          // A wait between attempts is named by the field (a display says what is waited for).
          { ...policy, signal, name: f.field },
        );
        digest = fetched.digest;
        if (md5Alias) {
          await store.syncDirs();
          await records.putAliases([[md5Alias, digest]]);
          aliases.add(md5Alias, digest);
        }
      }
    }
    if (f.identity === null) {
      log(
        `${f.field}: ${f.source.url} has no pinned digest, so a plan cannot know its content and ` +
          `says what reads it may rerun; to pin it, add "sha256": "${digest}" to ${f.field}`,
      );
    }
    inputs[name] = f.identity ?? digest;
    const info = await Deno.stat(store.path(digest));
    stored[name] = { digest, size: info.size, path: store.path(digest) };
  }
  if (Object.keys(stored).length > 0) {
    const digests = Object.fromEntries(Object.entries(stored).map(([n, s]) => [n, s.digest]));
    writer.set(KEYS.files(task, hashJson(digests)), digests);
  }
  return { inputs, stored };
}

/** A local file's sha256 (and MD5 when asked), from the records while the file is unchanged. */
async function localDigest(
  path: string,
  field: string,
  records: Records,
  wantMd5: boolean,
): Promise<FileDigest & { md5?: string }> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new FileInputError(`${field}: file not found: ${path}`);
    }
    throw e;
  }
  if (!info.isFile) {
    throw new FileInputError(`${field}: expected a file, found a directory: ${path}`);
  }
  const stamp = { size: info.size, mtimeMs: info.mtime?.getTime() ?? 0, ino: info.ino ?? 0 };
  const known = await records.fileDigest(path) as (FileDigest & { md5?: string }) | null;
  if (
    known && known.size === stamp.size && known.mtimeMs === stamp.mtimeMs &&
    known.ino === stamp.ino && (!wantMd5 || known.md5)
  ) {
    return known;
  }
  const sha = createHash("sha256");
  const md5 = createHash("md5");
  using file = await Deno.open(path);
  let size = 0;
  for await (const chunk of file.readable) {
    sha.update(chunk);
    md5.update(chunk);
    size += chunk.length;
  }
  const digest = { ...stamp, size, sha256: sha.digest("hex"), md5: md5.digest("hex") };
  await records.putFileDigest(path, digest);
  return digest;
}

/** Copies a local file into the store, checking it still has the content it was planned with. */
async function copyIn(store: ObjectStore, path: string, field: string, digest: string) {
  const tmp = store.tempPath("copy");
  await Deno.copyFile(path, tmp);
  const sha = createHash("sha256");
  {
    using file = await Deno.open(tmp);
    for await (const chunk of file.readable) sha.update(chunk);
  }
  const found = sha.digest("hex");
  if (found !== digest) {
    await Deno.remove(tmp);
    throw new FileInputError(
      `${field}: ${path} changed while it was being read (expected sha256 ${digest}, found ` +
        `${found}); run again`,
    );
  }
  await store.putFile(tmp, digest);
}

function check(
  field: string,
  where: string,
  what: string,
  expected: string | number | undefined,
  found: string | number | undefined,
) {
  if (expected !== undefined && expected !== found) {
    throw new FileInputError(`${field}: ${where}: expected ${what} ${expected}, found ${found}`);
  }
}

/**
 * Files a task declares (models, a dataset spec, a labels list): what identifies their content
 * in a plan, and bringing them into the store for a run. The identity joins every key of the
 * task, in the plan and in the run alike:
 *
 * - a local file: its sha256, remembered in the records by path, size, mtime and inode, so
 *   planning stays fast and a touched but unchanged file costs one hash;
 * - a URL with a pinned sha256: that sha256; with a pinned MD5 only: `md5:<hex>`;
 * - a URL without a pin: unknown until fetched; a run fetches it and uses its sha256, a plan
 *   says that what depends on it may rerun;
 * - a file declared with `keyOn` (see `FileDeclaration`): what is read from its bytes, written
 *   `name:value` (`latent-channels:{"channels":4}`), remembered by its sha256 — or, when the
 *   file cannot tell, what the declaration says otherwise, else its sha256; a plan that cannot
 *   read the file yet says it is unknown.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import type { ObjectStore } from "../store/objects.ts";
import { type FileDigest, KEYS, type Records, type RecordWriter } from "../store/records.ts";
import type { ObjectAliases } from "../store/aliases.ts";
import { canonicalJson, hashJson, type Json } from "../store/canonical.ts";
import { fetchSource, type FileSourceSpec } from "../net/fetch_source.ts";
import { retry } from "../base/retry.ts";
import { getPath } from "./config.ts";
import type { FileDeclaration, FileDownloadOptions, RetryPolicy, StoredFile } from "./task.ts";

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
  /** What of the file is keyed, when not its bytes. */
  keyOn?: FileDeclaration["keyOn"];
}

/** Marks an input digest that is unknown until the file is fetched. */
export const UNKNOWN_FILE = "unknown-until-fetched:";

/**
 * Resolves the files a task declares (input name → config field) to their identities.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRecords } from "../store/records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const records = await openRecords(cache);
 * await Deno.writeTextFile(`${cache}/vae_encoder.onnx`, "the encoder's bytes");
 * const planned = await planFiles({ decoder: "model.decoder", encoder: "model.encoder" }, {
 *   model: {
 *     decoder: { url: "https://example.org/vae.onnx", sha256: "ab".repeat(32) },
 *     encoder: { path: `${cache}/vae_encoder.onnx` },
 *   },
 * }, records);
 * assert.equal(planned.decoder.identity, "ab".repeat(32)); // its pin: nothing fetched
 * assert.match(planned.encoder.identity!, /^[0-9a-f]{64}$/); // the local file's sha256
 * records.close();
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function planFiles(
  declared: Record<string, string | FileDeclaration | undefined>,
  config: unknown,
  records: Records,
): Promise<Record<string, PlannedFile>> {
  const out: Record<string, PlannedFile> = {};
  for (const [name, declaration] of Object.entries(declared)) {
    if (declaration === undefined) continue;
    const field = typeof declaration === "string" ? declaration : declaration.field;
    const keyOn = typeof declaration === "string" ? undefined : declaration.keyOn;
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
      out[name] = { field, source, identity: digest.sha256, path, keyOn };
    } else if (source.url !== undefined) {
      const identity = source.sha256 ?? (source.md5 ? `md5:${source.md5}` : null);
      out[name] = { field, source, identity, keyOn };
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

/** Where what is read from declared files is remembered (the cache's records). */
export interface FileKeyCache {
  fileKey(scope: string, name: string, sha256: string): Promise<{ value: Json } | null>;
  putFileKey(scope: string, name: string, sha256: string, value: Json): Promise<void>;
}

/**
 * The input digests of the declared files, with those declared `keyOn` replaced by what is
 * read from them: `where` says where the bytes of a file can be read now (null when they
 * cannot be before it is fetched: it is then unknown); what was read is remembered by the
 * file's sha256 within `scope` (the task's code, which reads it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Json } from "../store/canonical.ts";
 *
 * const remembered = new Map<string, { value: Json }>();
 * const cache: FileKeyCache = {
 *   fileKey: (scope, name, sha) => Promise.resolve(remembered.get(`${scope} ${name} ${sha}`) ?? null),
 *   putFileKey: (scope, name, sha, value) => {
 *     remembered.set(`${scope} ${name} ${sha}`, { value });
 *     return Promise.resolve();
 *   },
 * };
 * const planned: Record<string, PlannedFile> = {
 *   decoder: {
 *     field: "model.decoder", source: { path: "d.onnx" }, identity: "ab".repeat(32),
 *     keyOn: { name: "latent-channels", read: () => Promise.resolve({ channels: 4 }) },
 *   },
 * };
 * const inputs = await keyedFileInputs(planned, { decoder: "ab".repeat(32) }, {
 *   where: () => Promise.resolve({ path: "d.onnx", sha256: "ab".repeat(32) }), cache, scope: "c0de",
 * });
 * assert.deepEqual(inputs, { decoder: 'latent-channels:{"channels":4}' });
 * ```
 */
export async function keyedFileInputs(
  planned: Record<string, PlannedFile>,
  inputs: Record<string, string>,
  { where, cache, scope }: {
    where: (name: string) => Promise<{ path: string; sha256: string } | null>;
    cache: FileKeyCache;
    scope: string;
  },
): Promise<Record<string, string>> {
  const out = { ...inputs };
  for (const [name, f] of Object.entries(planned)) {
    if (!f.keyOn) continue;
    const file = await where(name);
    if (file === null) {
      out[name] = `${UNKNOWN_FILE}${f.source.url ?? f.source.path}`;
      continue;
    }
    const known = await cache.fileKey(scope, f.keyOn.name, file.sha256);
    let value: Json;
    if (known) value = known.value;
    else {
      value = await f.keyOn.read(file.path);
      await cache.putFileKey(scope, f.keyOn.name, file.sha256, value);
    }
    value ??= f.keyOn.otherwise ?? null;
    out[name] = value === null ? file.sha256 : `${f.keyOn.name}:${canonicalJson(value)}`;
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

/**
 * Brings a file named by a config source (`{ path }` or `{ url }`, optionally with `sha256`,
 * `md5` and `size`) into the object store: local files are hashed and copied in, URLs are
 * downloaded resumably and verified. Used for specs, label lists and models.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import type { ObjectStore } from "../store/objects.ts";
import { sha256Hex } from "../store/canonical.ts";
import { downloadVerified } from "./download.ts";
import type { DriveApi } from "./drive_api.ts";

/** Where a file comes from. */
export interface FileSourceSpec {
  path?: string;
  url?: string;
  sha256?: string;
  md5?: string;
  size?: number;
}

/** Raised when a source is missing or does not match its declared digest or size. */
export class SourceError extends Error {
  override readonly name = "SourceError";
}

/** A file in the store. */
export interface FetchedFile {
  digest: string;
  size: number;
  /** Where the object lives (for readers that want a path). */
  path: string;
}

/**
 * Copies or downloads `source` into the store and returns its digest. `label` names the config
 * field in error messages (e.g. "model.decoder").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { ObjectStore } from "../store/objects.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const store = new ObjectStore(`${dir}/cache`);
 *   await Deno.writeTextFile(`${dir}/vae_decoder.onnx`, "model bytes");
 *   const { digest, size } = await fetchSource(store, { path: `${dir}/vae_decoder.onnx` }, "model.decoder");
 *   assert.equal(digest, createHash("sha256").update("model bytes").digest("hex"));
 *   assert.equal(size, 11);
 *   await assert.rejects(
 *     fetchSource(store, { path: `${dir}/absent.onnx` }, "model.decoder"),
 *     /model\.decoder: file not found/,
 *   );
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function fetchSource(
  store: ObjectStore,
  source: FileSourceSpec,
  label: string,
  { signal, stallMs = 60_000, drive }: {
    signal?: AbortSignal;
    stallMs?: number;
    /** Fetches a Google Drive link through the Drive API with its key. Default: the link. */
    drive?: Pick<DriveApi, "route" | "headersFor"> | null;
  } = {},
): Promise<FetchedFile> {
  if (source.path !== undefined) {
    const path = resolve(source.path);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new SourceError(`${label}: file not found: ${path}`);
      }
      throw e;
    }
    if (!info.isFile) {
      throw new SourceError(`${label}: expected a file, found a directory: ${path}`);
    }
    checkSize(label, path, source.size, info.size);
    const sha = createHash("sha256");
    const md5 = source.md5 ? createHash("md5") : null;
    const file = await Deno.open(path);
    for await (const chunk of file.readable) {
      sha.update(chunk);
      md5?.update(chunk);
    }
    const digest = sha.digest("hex");
    checkDigest(label, path, "sha256", source.sha256, digest);
    if (md5) checkDigest(label, path, "MD5", source.md5, md5.digest("hex"));
    if (!(await store.has(digest))) {
      const tmp = store.tempPath("copy");
      await Deno.copyFile(path, tmp);
      await store.putFile(tmp, digest);
    }
    return { digest, size: info.size, path: store.path(digest) };
  }
  if (source.url === undefined) throw new SourceError(`${label}: expected a path or a url`);
  const partialDir = `${store.root}/partial`;
  await Deno.mkdir(partialDir, { recursive: true });
  const result = await downloadVerified({
    urls: [drive?.route(source.url) ?? source.url],
    requestHeaders: (url) => drive?.headersFor(url),
    partialPath: `${partialDir}/${sha256Hex(source.url).slice(0, 32)}`,
    expectedSize: source.size,
    expectedMd5: source.md5,
    stallMs,
    signal,
  });
  checkDigest(label, source.url, "sha256", source.sha256, result.sha256);
  const digest = await store.putFile(result.path, result.sha256);
  return { digest, size: result.size, path: store.path(digest) };
}

function checkSize(label: string, where: string, expected: number | undefined, found: number) {
  if (expected !== undefined && expected !== found) {
    throw new SourceError(`${label}: ${where}: expected ${expected} bytes, found ${found}`);
  }
}

function checkDigest(
  label: string,
  where: string,
  kind: string,
  expected: string | undefined,
  found: string,
) {
  if (expected !== undefined && expected !== found) {
    throw new SourceError(`${label}: ${where}: expected ${kind} ${expected}, found ${found}`);
  }
}

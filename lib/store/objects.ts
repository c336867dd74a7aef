/**
 * The content-addressed object store: immutable blobs named by their sha256, written to a
 * temp file, fsynced and renamed into a sharded directory, so a reader never sees half an object.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

/** Raised when an object is missing or its digest is malformed. */
export class ObjectStoreError extends Error {
  override readonly name = "ObjectStoreError";
}

const DIGEST = /^[0-9a-f]{64}$/;

/** Immutable blobs under `<cache>/objects/ab/cdef…`. */
export class ObjectStore {
  readonly root: string;
  readonly tmpDir: string;
  readonly #objects: string;
  readonly #dirtyDirs = new Set<string>();
  readonly #knownDirs = new Set<string>();

  constructor(cacheDir: string) {
    this.root = cacheDir;
    this.#objects = join(cacheDir, "objects");
    this.tmpDir = join(cacheDir, "tmp");
    Deno.mkdirSync(this.#objects, { recursive: true });
    Deno.mkdirSync(this.tmpDir, { recursive: true });
  }

  /** The path an object with this digest lives at (whether or not it exists). */
  path(digest: string): string {
    if (!DIGEST.test(digest)) {
      throw new ObjectStoreError(`expected a sha256 hex digest, found ${JSON.stringify(digest)}`);
    }
    return join(this.#objects, digest.slice(0, 2), digest);
  }

  /** A fresh temp file path inside the cache (same filesystem, so rename is atomic). */
  tempPath(hint = "obj"): string {
    return join(this.tmpDir, `${hint}.${crypto.randomUUID()}`);
  }

  /** Whether the object is present. */
  async has(digest: string): Promise<boolean> {
    try {
      await Deno.stat(this.path(digest));
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  }

  /** Stores bytes and returns their digest; storing existing content is a no-op. */
  async put(bytes: Uint8Array): Promise<string> {
    const digest = createHash("sha256").update(bytes).digest("hex");
    if (await this.has(digest)) return digest;
    const tmp = this.tempPath();
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    await this.#install(tmp, digest);
    return digest;
  }

  /**
   * Moves a finished temp file (already fsynced by its writer, or synced here) into the store.
   * When `digest` is not given the file is hashed first.
   */
  async putFile(tmpPath: string, digest?: string): Promise<string> {
    if (!digest) digest = await hashFile(tmpPath);
    if (await this.has(digest)) {
      await Deno.remove(tmpPath).catch(() => {});
      return digest;
    }
    const file = await Deno.open(tmpPath, { read: true, write: true });
    try {
      await file.sync();
    } finally {
      file.close();
    }
    await this.#install(tmpPath, digest);
    return digest;
  }

  /** Reads an object's bytes. */
  async get(digest: string): Promise<Uint8Array> {
    try {
      return await Deno.readFile(this.path(digest));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new ObjectStoreError(`object ${digest} is missing from ${this.#objects}`);
      }
      throw e;
    }
  }

  /** Reads an object as UTF-8 JSON. */
  async getJson<T>(digest: string): Promise<T> {
    return JSON.parse(new TextDecoder().decode(await this.get(digest))) as T;
  }

  /** Stores a value as canonical-free UTF-8 JSON and returns its digest. */
  putJson(value: unknown): Promise<string> {
    return this.put(new TextEncoder().encode(JSON.stringify(value)));
  }

  /** Makes every rename since the last call durable (fsync of the shard directories). */
  async syncDirs(): Promise<void> {
    const dirs = [...this.#dirtyDirs];
    this.#dirtyDirs.clear();
    for (const dir of dirs) await fsyncDir(dir);
  }

  /** Every stored object: digest, path and size. */
  async *list(): AsyncGenerator<{ digest: string; path: string; size: number }> {
    for await (const shard of readDirOrEmpty(this.#objects)) {
      if (!shard.isDirectory) continue;
      const dir = join(this.#objects, shard.name);
      for await (const entry of readDirOrEmpty(dir)) {
        if (!entry.isFile || !DIGEST.test(entry.name)) continue;
        const path = join(dir, entry.name);
        const info = await Deno.stat(path).catch(() => null);
        if (info) yield { digest: entry.name, path, size: info.size };
      }
    }
  }

  /** Deletes an object (used by gc); missing objects are ignored. */
  async remove(digest: string): Promise<void> {
    await Deno.remove(this.path(digest)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }

  async #install(tmp: string, digest: string): Promise<void> {
    const dir = join(this.#objects, digest.slice(0, 2));
    if (!this.#knownDirs.has(dir)) {
      await Deno.mkdir(dir, { recursive: true });
      this.#knownDirs.add(dir);
    }
    await Deno.rename(tmp, join(dir, digest));
    this.#dirtyDirs.add(dir);
  }
}

/** Streams a file through sha256. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** fsyncs a directory so renames inside it survive a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}

/**
 * Writes a file atomically: temp file beside it, fsync, rename, fsync of the directory.
 *
 * @example
 * ```ts
 * await writeFileAtomic("out/manifest.json", new TextEncoder().encode("{}"));
 * ```
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const dir = path.slice(0, Math.max(0, path.lastIndexOf("/"))) || ".";
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  const file = await Deno.open(tmp, { write: true, createNew: true });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
  await fsyncDir(dir);
}

async function* readDirOrEmpty(dir: string): AsyncGenerator<Deno.DirEntry> {
  try {
    yield* Deno.readDir(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

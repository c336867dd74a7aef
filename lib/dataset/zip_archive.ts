/**
 * Reading the entries of a `.zip` archive without extracting it: the central directory is
 * parsed by yauzl (ZIP64 included, so a 70,000-entry, 89 GB archive reads like a small one),
 * and an entry's bytes are streamed straight out of the archive with positional reads of 1 MiB
 * and inflated on the way (stored and deflated entries; what FFHQ copies use), its size and
 * CRC-32 checked against the directory. Nothing is written anywhere, and the archive is opened
 * read-only.
 *
 * @module
 */
// @ts-types="@types/yauzl"
import yauzl from "yauzl";
import { crc32 } from "node:zlib";

/** Raised when an archive cannot be read, or one of its entries cannot be streamed. */
export class ZipArchiveError extends Error {
  override readonly name = "ZipArchiveError";
}

/** One file in an archive. */
export interface ZipEntry {
  /** The entry's path inside the archive (`images1024x1024/00042.png`), `/`-separated. */
  name: string;
  /** Uncompressed size in bytes. */
  size: number;
  /** Bytes the entry occupies in the archive. */
  compressedSize: number;
  /** 0 stored, 8 deflated; anything else cannot be streamed (see {@link ZipArchive.read}). */
  method: number;
  /** CRC-32 of the uncompressed bytes, as the archive records it. */
  crc32: number;
  /** Modification time recorded for the entry. */
  modified: Date;
  encrypted: boolean;
}

const CHUNK = 1 << 20;
const METHOD_NAMES: Record<number, string> = {
  1: "Shrink",
  6: "Implode",
  9: "Deflate64",
  12: "bzip2",
  14: "LZMA",
  93: "Zstandard",
  95: "XZ",
  98: "PPMd",
};

/**
 * An open archive: its entries, listed once from the central directory, and a way to stream
 * any of them. Close it when done.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { zipSync } from "fflate";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const bytes = zipSync({ "00042.png": new TextEncoder().encode("png bytes") });
 *   await Deno.writeFile(`${dir}/archive.zip`, bytes);
 *   const zip = await ZipArchive.open(`${dir}/archive.zip`);
 *   try {
 *     const [entry] = zip.entries;
 *     const parts = await Array.fromAsync(zip.read(entry));
 *     assert.equal(entry.name, "00042.png");
 *     assert.equal(new TextDecoder().decode(parts[0]), "png bytes");
 *   } finally {
 *     zip.close();
 *   }
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class ZipArchive {
  /** The archive's path. */
  readonly path: string;
  /** The archive's size in bytes. */
  readonly size: number;
  /** Every file entry (directories left out), in central-directory order. */
  readonly entries: readonly ZipEntry[];
  readonly #zip: yauzl.ZipFile;
  readonly #raw: Map<ZipEntry, yauzl.Entry>;

  private constructor(
    path: string,
    size: number,
    zip: yauzl.ZipFile,
    raw: Map<ZipEntry, yauzl.Entry>,
  ) {
    this.path = path;
    this.size = size;
    this.#zip = zip;
    this.#raw = raw;
    this.entries = [...raw.keys()];
  }

  /**
   * Opens an archive and lists its entries. A file that is not a zip archive, or whose
   * directory is damaged, fails with a {@link ZipArchiveError} naming it.
   */
  static async open(path: string): Promise<ZipArchive> {
    let zip: yauzl.ZipFile;
    try {
      zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
        yauzl.open(
          path,
          { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true },
          (error, zipfile) => error ? reject(error) : resolve(zipfile),
        )
      );
    } catch (error) {
      throw openError(path, error);
    }
    const raw = new Map<ZipEntry, yauzl.Entry>();
    try {
      await new Promise<void>((resolve, reject) => {
        zip.on("entry", (entry: yauzl.Entry) => {
          if (!entry.fileName.endsWith("/")) {
            raw.set({
              name: entry.fileName,
              size: entry.uncompressedSize,
              compressedSize: entry.compressedSize,
              method: entry.compressionMethod,
              crc32: entry.crc32,
              modified: entry.getLastModDate(),
              encrypted: entry.isEncrypted(),
            }, entry);
          }
          zip.readEntry();
        });
        zip.on("end", () => resolve());
        zip.on("error", reject);
        zip.readEntry();
      });
    } catch (error) {
      zip.close();
      throw new ZipArchiveError(
        `${path}: the archive's directory is damaged after ${raw.size} entries (${
          describe(error)
        })`,
      );
    }
    return new ZipArchive(path, zip.fileSize, zip, raw);
  }

  /**
   * Why an entry cannot be streamed (encrypted, or compressed with a method other than store
   * or deflate), or `null` when it can.
   */
  unreadableReason(entry: ZipEntry): string | null {
    if (entry.encrypted) return "the entry is encrypted";
    if (entry.method !== 0 && entry.method !== 8) {
      const name = METHOD_NAMES[entry.method];
      return `the entry is compressed with method ${entry.method}${
        name ? ` (${name})` : ""
      }, which cannot be read (only stored and deflated entries can)`;
    }
    return null;
  }

  /**
   * Streams an entry's uncompressed bytes in chunks of about 1 MiB, read straight from the
   * archive. Fails with a {@link ZipArchiveError} when the entry cannot be read, its data is
   * damaged, or it does not hold the size the directory records.
   */
  async *read(entry: ZipEntry, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const raw = this.#raw.get(entry);
    if (!raw) throw new ZipArchiveError(`${this.path}: no entry ${entry.name} in this archive`);
    const why = this.unreadableReason(entry);
    if (why) throw new ZipArchiveError(`${this.path}!${entry.name}: ${why}`);
    const start = await new Promise<number>((resolve, reject) =>
      this.#zip.readLocalFileHeader(
        raw,
        { minimal: true },
        (error, header) => error ? reject(error) : resolve(header.fileDataStart),
      )
    ).catch((error) => {
      throw new ZipArchiveError(
        `${this.path}!${entry.name}: the entry's local header is damaged (${describe(error)})`,
      );
    });
    const compressed = readRange(this.path, start, entry.compressedSize, signal);
    let produced = 0;
    let crc = 0;
    const where = `${this.path}!${entry.name}`;
    try {
      const source = entry.method === 8 ? inflateRaw(compressed, where) : compressed;
      for await (const chunk of source) {
        produced += chunk.length;
        if (produced > entry.size) break;
        crc = crc32(chunk, crc);
        // The last chunk is checked before it is handed on, so no reader takes damaged data.
        if (produced === entry.size && crc !== entry.crc32) break;
        yield chunk;
      }
    } finally {
      await compressed.return(undefined);
    }
    if (produced !== entry.size) {
      throw new ZipArchiveError(
        `${where}: the entry holds ${
          produced > entry.size ? "more than " : ""
        }${produced} bytes, its directory record says ${entry.size}`,
      );
    }
    if (crc !== entry.crc32) {
      throw new ZipArchiveError(
        `${where}: the entry's data is damaged (CRC-32 ${hex(crc)}, the archive records ${
          hex(entry.crc32)
        })`,
      );
    }
  }

  /** Reads a whole entry into memory. */
  async bytes(entry: ZipEntry, signal?: AbortSignal): Promise<Uint8Array> {
    const out = new Uint8Array(entry.size);
    let at = 0;
    for await (const chunk of this.read(entry, signal)) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }

  /** Closes the archive. */
  close(): void {
    this.#zip.close();
  }
}

/** Reads `length` bytes from `start` of a file, in chunks, through a handle of its own. */
async function* readRange(
  path: string,
  start: number,
  length: number,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  await file.seek(start, Deno.SeekMode.Start);
  let left = length;
  while (left > 0) {
    signal?.throwIfAborted();
    const buf = new Uint8Array(Math.min(CHUNK, left));
    let filled = 0;
    while (filled < buf.length) {
      const n = await file.read(buf.subarray(filled));
      if (n === null) {
        throw new ZipArchiveError(
          `${path}: the archive ends ${left - filled} bytes before the entry's data does`,
        );
      }
      filled += n;
    }
    left -= filled;
    yield buf;
  }
}

/** Inflates a raw deflate stream (zip method 8) with the runtime's native decompressor. */
async function* inflateRaw(
  chunks: AsyncGenerator<Uint8Array>,
  where: string,
): AsyncGenerator<Uint8Array> {
  const inflate = new DecompressionStream("deflate-raw");
  const writer = inflate.writable.getWriter();
  // Feeding never rejects: its failure is kept and thrown where the reading side meets it.
  const feeding = (async (): Promise<{ error: unknown } | null> => {
    try {
      for await (const chunk of chunks) await writer.write(chunk as Uint8Array<ArrayBuffer>);
      await writer.close();
      return null;
    } catch (error) {
      // Aborting errors the inflater's readable with this error, so the read below stops too
      // (an abort resolves once the stream has errored).
      await writer.abort(error);
      return { error };
    }
  })();
  const reader = inflate.readable.getReader();
  let readError: unknown = undefined;
  try {
    for (;;) {
      let step;
      try {
        step = await reader.read();
      } catch (error) {
        readError = error;
        // The feeding side's own error (a short archive) says more than the inflater's.
        const fed = await feeding;
        if (fed) throw fed.error;
        // The inflater fails with a TypeError on data that is not a deflate stream.
        if (!(error instanceof TypeError)) throw error;
        throw new ZipArchiveError(`${where}: the entry's compressed data is damaged`);
      }
      if (step.done) break;
      yield step.value;
    }
    const fed = await feeding;
    if (fed) throw fed.error;
  } finally {
    reader.releaseLock();
    await inflate.readable.cancel().catch((error) => {
      // An errored stream's cancel repeats the error the read above already met and reported.
      if (error !== readError) throw error;
    });
  }
}

function hex(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}

function describe(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  if (/end of central directory record signature not found/i.test(text)) {
    return "no end-of-central-directory record: not a zip archive, or cut short";
  }
  if (/invalid (central directory|local file header) .*signature/i.test(text)) {
    return "a record does not start where the directory says";
  }
  if (/overflows file bounds|file data overflows/i.test(text)) {
    return "an entry's data runs past the end of the file: the archive is cut short";
  }
  if (/invalid characters|absolute path|relative path|backslash/i.test(text)) {
    return "an entry has an unsafe name";
  }
  if (/zip64/i.test(text)) return "a ZIP64 record is damaged";
  return "its records are inconsistent";
}

function openError(path: string, error: unknown): ZipArchiveError {
  if ((error as { code?: string })?.code === "ENOENT") {
    return new ZipArchiveError(`${path}: no such file`);
  }
  if ((error as { code?: string })?.code === "EACCES") {
    return new ZipArchiveError(`${path}: permission denied (the archive must be readable)`);
  }
  return new ZipArchiveError(`${path}: not a readable zip archive (${describe(error)})`);
}

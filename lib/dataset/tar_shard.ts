/**
 * A reader of tar shards as WebDataset and img2dataset write them: POSIX ustar headers (with the
 * `prefix` field), pax extended headers (`path`, `size`) and GNU long names, read from the file
 * where it lies, one header after another, so a shard is never unpacked. Each regular member
 * comes with the byte offset of its data, so one member can be read again later by position
 * ({@link readTarMember}).
 *
 * A header whose checksum does not match, whose size is not a number, or that runs past the end
 * of the file stops the walk: everything after it is unreadable, and the caller is told where.
 *
 * @module
 */

/** A regular member of a shard: its name, and `size` bytes of data at byte `offset`. */
export interface TarEntry {
  name: string;
  offset: number;
  size: number;
}

/** Where and why a shard stopped being readable. */
export interface TarDamage {
  /** Byte offset of the header that could not be read. */
  offset: number;
  reason: string;
}

/** Raised when a member cannot be read back (the shard changed or is shorter). */
export class TarReadError extends Error {
  override readonly name = "TarReadError";
}

const BLOCK = 512;

/**
 * Walks the shard's headers and calls `entry` for each regular member (its data is read only
 * when `entry` asks, through the `read` it is given). Resolves with the damage that stopped the
 * walk, or `null` when the shard ended cleanly (two zero blocks, or the end of the file).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/a.txt`, "hello");
 *   const tar = new Deno.Command("tar", { args: ["-cf", `${dir}/s.tar`, "-C", dir, "a.txt"] });
 *   assert.equal((await tar.output()).code, 0);
 *   const names: string[] = [];
 *   const damage = await walkTarShard(`${dir}/s.tar`, async (e, read) => {
 *     names.push(`${e.name}=${new TextDecoder().decode(await read())}`);
 *   });
 *   assert.deepEqual([names, damage], [["a.txt=hello"], null]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function walkTarShard(
  path: string,
  entry: (e: TarEntry, read: () => Promise<Uint8Array>) => Promise<void>,
): Promise<TarDamage | null> {
  using file = await Deno.open(path, { read: true });
  const length = (await file.stat()).size;
  let offset = 0;
  let pax: Record<string, string> = {};
  let longName: string | null = null;
  while (offset + BLOCK <= length) {
    const header = await readAt(file, offset, BLOCK);
    if (header.every((b) => b === 0)) return null;
    const parsed = parseHeader(header);
    if ("reason" in parsed) return { offset, reason: parsed.reason };
    const size = pax.size !== undefined ? Number(pax.size) : parsed.size;
    const dataAt = offset + BLOCK;
    if (!Number.isSafeInteger(size) || size < 0 || dataAt + size > length) {
      return {
        offset,
        reason: `its member ${JSON.stringify(parsed.name)} says ${size} bytes, but the file ` +
          `has ${Math.max(0, length - dataAt)} after the header`,
      };
    }
    const read = () => readAt(file, dataAt, size);
    if (parsed.type === "x") {
      pax = parsePax(await read());
    } else if (parsed.type === "L") {
      longName = new TextDecoder().decode(await read()).replace(/\0+$/, "");
    } else {
      if (parsed.type === "0" || parsed.type === "\0" || parsed.type === "7") {
        await entry({ name: pax.path ?? longName ?? parsed.name, offset: dataAt, size }, read);
      }
      pax = {};
      longName = null;
    }
    offset = dataAt + Math.ceil(size / BLOCK) * BLOCK;
  }
  return offset < length
    ? { offset, reason: `the file ends ${length - offset} bytes into a header` }
    : null;
}

/**
 * Reads one member's bytes back by position; a shard that is shorter than the member throws
 * {@link TarReadError} naming the shard.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeTextFile(`${dir}/a.txt`, "hello");
 *   await new Deno.Command("tar", { args: ["-cf", `${dir}/s.tar`, "-C", dir, "a.txt"] }).output();
 *   const bytes = await readTarMember({ file: `${dir}/s.tar`, offset: 512, size: 5 });
 *   assert.equal(new TextDecoder().decode(bytes), "hello");
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function readTarMember(
  { file, offset, size }: { file: string; offset: number; size: number },
): Promise<Uint8Array> {
  using f = await Deno.open(file, { read: true });
  const bytes = await readAt(f, offset, size);
  if (bytes.length !== size) {
    throw new TarReadError(
      `${file}: expected ${size} bytes at byte ${offset}, found ${bytes.length} (the shard ` +
        `changed since it was listed)`,
    );
  }
  return bytes;
}

async function readAt(file: Deno.FsFile, offset: number, size: number): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(size);
  let filled = 0;
  while (filled < size) {
    const n = await file.read(out.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return out.subarray(0, filled);
}

type Header = { name: string; size: number; type: string } | { reason: string };

function parseHeader(h: Uint8Array): Header {
  const text = (from: number, len: number) =>
    new TextDecoder().decode(h.subarray(from, from + len)).replace(/\0.*$/s, "");
  const stored = parseInt(text(148, 8).trim() || "x", 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
  if (stored !== sum) {
    return {
      reason: `its checksum is ${Number.isNaN(stored) ? "not a number" : stored}, the ` +
        `header's bytes sum to ${sum}`,
    };
  }
  let size: number;
  if (h[124] & 0x80) {
    // GNU base-256 sizes, for members of 8 GiB and more.
    size = 0;
    for (let i = 125; i < 136; i++) size = size * 256 + h[i];
  } else {
    size = parseInt(text(124, 12).trim() || "0", 8);
    if (Number.isNaN(size)) return { reason: `its size field is not an octal number` };
  }
  const name = text(0, 100);
  const magic = text(257, 6);
  const prefix = magic.startsWith("ustar") ? text(345, 155) : "";
  return { name: prefix ? `${prefix}/${name}` : name, size, type: String.fromCharCode(h[156]) };
}

/** A pax extended header: records `"<length> <key>=<value>\n"`, the length in bytes. */
function parsePax(bytes: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  const decoder = new TextDecoder();
  let at = 0;
  while (at < bytes.length) {
    const space = bytes.indexOf(0x20, at);
    const length = Number(decoder.decode(bytes.subarray(at, space)));
    if (space < 0 || !Number.isSafeInteger(length) || length <= space - at) break;
    const record = decoder.decode(bytes.subarray(space + 1, at + length - 1));
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return out;
}

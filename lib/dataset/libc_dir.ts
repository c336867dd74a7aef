/**
 * One directory read through the C library, with Deno's FFI: `getdents64` for its entries and
 * `statx` (relative to the open directory, so the kernel does not resolve the whole path again)
 * for each regular file's size, modification time and inode. This is what `find` does; Deno's
 * `readDirSync` plus `statSync` cost about twice as much per file, which decides how long a plan
 * of a million-image folder takes to see that nothing changed.
 *
 * Linux with glibc ≥ 2.30 only; {@link loadLibcDir} returns `undefined` elsewhere, when the
 * library is not where distributions put it, or when FFI is not granted for it — the listing
 * then reads directories through Deno (dir_entries.ts), with the same results.
 *
 * @module
 */
import { firstFileSync } from "../base/fs.ts";
import { type DirEntries, EntryKind, UnreadableDirError } from "./dir_entries.ts";

const SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** Where distributions install glibc, by architecture. */
const CANDIDATES: Record<string, string[]> = {
  x86_64: ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"],
  aarch64: ["/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib/aarch64-linux-gnu/libc.so.6"],
};
/** Fedora and Arch keep it here on every architecture. */
const GENERIC = ["/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/usr/lib/libc.so.6"];

/** `open` flags: O_DIRECTORY differs between the two architectures; O_CLOEXEC does not. */
const O_DIRECTORY = { x86_64: 0o200000, aarch64: 0o40000 } as const;
const O_CLOEXEC = 0o2000000;
const AT_SYMLINK_NOFOLLOW = 0x100;
/** STATX_TYPE | STATX_MODE | … | STATX_BLOCKS: what `stat` gives. */
const STATX_BASIC_STATS = 0x7ff;
/** `d_type` values of `struct linux_dirent64`. */
const DT_UNKNOWN = 0;
const DT_DIR = 4;
const DT_REG = 8;
const DT_LNK = 10;
/** `stx_mode`'s file type bits. */
const S_IFMT = 0o170000;
const S_IFDIR = 0o40000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** What errno values mean, in the words the listing's messages use. */
const ERRNO: Record<number, string> = {
  1: "operation not permitted",
  2: "no such file or directory",
  5: "input/output error",
  13: "permission denied",
  20: "not a directory",
  24: "too many open files",
  40: "too many levels of symbolic links",
  116: "stale file handle",
};

/** The C-library way of reading a directory (see {@link loadLibcDir}). */
export interface LibcDir {
  /** The library file that was loaded. */
  readonly path: string;
  /** The entries of `dir`, in the order the file system gives them. */
  read(dir: string): DirEntries;
}

/** The glibc file to load on this machine, or `undefined`. */
export function libcPath(): string | undefined {
  if (Deno.build.os !== "linux") return undefined;
  return firstFileSync([...CANDIDATES[Deno.build.arch] ?? [], ...GENERIC]);
}

let loaded: LibcDir | null | undefined;

/**
 * Loads the C library's directory functions once per process; `undefined` when they cannot be
 * used here (not Linux, no glibc found, FFI not granted for it, or symbols missing).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const libc = loadLibcDir();
 * if (libc) {
 *   const dir = await Deno.makeTempDir();
 *   await Deno.writeTextFile(`${dir}/a.txt`, "abc");
 *   const entries = libc.read(dir);
 *   assert.deepEqual(entries.names, ["a.txt"]);
 *   assert.equal(entries.size[0], 3);
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export function loadLibcDir(): LibcDir | undefined {
  if (loaded === undefined) loaded = open() ?? null;
  return loaded ?? undefined;
}

function open(): LibcDir | undefined {
  const path = libcPath();
  const arch = Deno.build.arch as keyof typeof O_DIRECTORY;
  if (path === undefined || !(arch in O_DIRECTORY)) return undefined;
  if (Deno.permissions.querySync({ name: "ffi", path }).state !== "granted") return undefined;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    // An older C library without getdents64 or statx: Deno's own calls do the same work.
    const unusable = e instanceof Error &&
      /^(Could not open library|Failed to register symbol)/.test(e.message);
    if (unusable) return undefined;
    throw e;
  }
  return new Reader(path, lib.symbols, O_DIRECTORY[arch] | O_CLOEXEC);
}

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

class Reader implements LibcDir {
  readonly path: string;
  readonly #c: Symbols;
  readonly #openFlags: number;
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder();
  /** Directory records; 64 KiB holds about 2,000 names per call. */
  readonly #dents = new Uint8Array(1 << 16);
  /** One `struct statx` (256 bytes), read as 32-bit words. */
  readonly #statx = new Uint32Array(64);
  readonly #statxBytes = new Uint8Array(this.#statx.buffer);
  #pathBuffer = new Uint8Array(4096);

  constructor(path: string, symbols: Symbols, openFlags: number) {
    this.path = path;
    this.#c = symbols;
    this.#openFlags = openFlags;
  }

  read(dir: string): DirEntries {
    const fd = this.#c.open(this.#cString(dir), this.#openFlags);
    if (fd < 0) throw new UnreadableDirError(dir, this.#errno());
    try {
      return this.#entries(fd, dir);
    } finally {
      this.#c.close(fd);
    }
  }

  #entries(fd: number, dir: string): DirEntries {
    const names: string[] = [];
    const kinds: number[] = [];
    const size: number[] = [];
    const mtimeMs: number[] = [];
    const ino: number[] = [];
    const errors = new Map<number, string>();
    const dents = this.#dents;
    const s = this.#statx;
    for (;;) {
      const got = Number(this.#c.getdents64(fd, dents, BigInt(dents.length)));
      if (got < 0) throw new UnreadableDirError(dir, this.#errno());
      if (got === 0) break;
      for (let off = 0; off < got;) {
        // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
        const reclen = dents[off + 16] | (dents[off + 17] << 8);
        const type = dents[off + 18];
        const at = off + 19;
        off += reclen;
        let end = at;
        while (dents[end] !== 0) end++;
        if (dents[at] === 46 && (end === at + 1 || (end === at + 2 && dents[at + 1] === 46))) {
          continue; // "." and ".."
        }
        const k = names.length;
        names.push(this.#decoder.decode(dents.subarray(at, end)));
        size.push(0);
        mtimeMs.push(0);
        ino.push(0);
        if (type === DT_DIR || type === DT_LNK) {
          kinds.push(type === DT_DIR ? EntryKind.Dir : EntryKind.Link);
          continue;
        }
        if (type !== DT_REG && type !== DT_UNKNOWN) {
          kinds.push(EntryKind.Other);
          continue;
        }
        // The name is NUL-terminated where it lies: statx reads it there.
        const r = this.#c.statx(
          fd,
          dents.subarray(at),
          AT_SYMLINK_NOFOLLOW,
          STATX_BASIC_STATS,
          this.#statxBytes,
        );
        if (r !== 0) {
          kinds.push(EntryKind.File);
          errors.set(k, this.#errno());
          continue;
        }
        // struct statx: stx_mode u16 at byte 28, stx_ino u64 at 32, stx_size u64 at 40,
        // stx_mtime { tv_sec i64, tv_nsec u32 } at 112.
        const mode = s[7] & 0xffff;
        if (type === DT_UNKNOWN && kindOfMode(mode) !== EntryKind.File) {
          kinds.push(kindOfMode(mode));
          continue;
        }
        kinds.push(EntryKind.File);
        ino[k] = s[8] + s[9] * 4294967296;
        size[k] = s[10] + s[11] * 4294967296;
        // Milliseconds, as Deno's FileInfo has them, so both ways of reading agree.
        const seconds = s[28] + (s[29] | 0) * 4294967296;
        mtimeMs[k] = seconds * 1000 + Math.floor(s[30] / 1e6);
      }
    }
    return {
      names,
      kinds: Uint8Array.from(kinds),
      size: Float64Array.from(size),
      mtimeMs: Float64Array.from(mtimeMs),
      ino: Float64Array.from(ino),
      errors,
    };
  }

  #cString(text: string): Uint8Array {
    if (this.#pathBuffer.length < text.length * 3 + 1) {
      this.#pathBuffer = new Uint8Array(text.length * 3 + 1);
    }
    const { written } = this.#encoder.encodeInto(text, this.#pathBuffer);
    this.#pathBuffer[written] = 0;
    return this.#pathBuffer;
  }

  #errno(): string {
    const pointer = this.#c.__errno_location();
    const code = pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
    return ERRNO[code] ?? `error ${code} of the C library`;
  }
}

/** The kind of entry a stat mode says (for a file system whose directory entries do not). */
function kindOfMode(mode: number): number {
  const fmt = mode & S_IFMT;
  return fmt === S_IFREG
    ? EntryKind.File
    : fmt === S_IFDIR
    ? EntryKind.Dir
    : fmt === S_IFLNK
    ? EntryKind.Link
    : EntryKind.Other;
}

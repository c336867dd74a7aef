/**
 * zlib decompression and CRC-32 through the system's libdeflate (Debian `libdeflate0`, Fedora
 * `libdeflate`, Homebrew `libdeflate`), called with Deno's FFI. libdeflate inflates a PNG's image
 * data two to three times faster than zlib does, which is most of the cost of decoding a PNG.
 *
 * Optional: {@linkcode loadLibdeflate} returns `undefined` when the library is not installed or
 * FFI is not permitted for it, and callers then decode the usual way. `LATENTFORGE_LIBDEFLATE`
 * names the library file explicitly; set it to `off` to never use it.
 *
 * @module
 */
import { firstFileSync } from "../base/fs.ts";

/** The decompressor's result codes (`enum libdeflate_result`). */
const SUCCESS = 0;

const SYMBOLS = {
  libdeflate_alloc_decompressor: { parameters: [], result: "pointer" },
  libdeflate_zlib_decompress_ex: {
    // decompressor, in, in_nbytes, out, out_nbytes_avail, actual_in_nbytes_ret, actual_out_nbytes_ret
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "buffer", "buffer"],
    result: "i32",
    // Runs on a thread of its own, so inflating one image overlaps other work.
    nonblocking: true,
  },
  libdeflate_crc32: { parameters: ["u32", "buffer", "usize"], result: "u32" },
} as const;

/** Where distributions install the library, by operating system. */
const CANDIDATES: Record<string, string[]> = {
  linux: [
    "/lib/x86_64-linux-gnu/libdeflate.so.0",
    "/usr/lib/x86_64-linux-gnu/libdeflate.so.0",
    "/lib/aarch64-linux-gnu/libdeflate.so.0",
    "/usr/lib/aarch64-linux-gnu/libdeflate.so.0",
    "/usr/lib64/libdeflate.so.0",
    "/usr/lib/libdeflate.so.0",
    "/usr/local/lib/libdeflate.so.0",
  ],
  darwin: ["/opt/homebrew/lib/libdeflate.dylib", "/usr/local/lib/libdeflate.dylib"],
};

/** The functions of libdeflate that decoding uses. */
export interface Libdeflate {
  /** The library file that was loaded. */
  readonly path: string;
  /**
   * Inflates one complete zlib stream (Adler-32 checked) that must use all of `input` and
   * produce exactly `outputSize` bytes; `undefined` when the stream is corrupt or either length
   * differs.
   */
  zlibInflate(input: Uint8Array, outputSize: number): Promise<Uint8Array | undefined>;
  /** CRC-32 (the PNG and gzip polynomial) of `bytes`, continuing from `crc` (0 to start). */
  crc32(bytes: Uint8Array, crc?: number): number;
}

/**
 * The path of the libdeflate library to use, or `undefined` when there is none (or it is
 * switched off). The launcher grants FFI for exactly this file.
 */
export function libdeflatePath(): string | undefined {
  let chosen: string | undefined;
  try {
    chosen = Deno.env.get("LATENTFORGE_LIBDEFLATE");
  } catch (e) {
    // No permission to read the variable: look in the usual places.
    if (!(e instanceof Deno.errors.NotCapable)) throw e;
  }
  if (chosen === "off") return undefined;
  const candidates = chosen ? [chosen] : CANDIDATES[Deno.build.os] ?? [];
  return firstFileSync(candidates);
}

let loaded: Libdeflate | null | undefined;

/** Loads libdeflate once per process; `undefined` when it is unavailable. */
export function loadLibdeflate(): Libdeflate | undefined {
  if (loaded === undefined) loaded = open() ?? null;
  return loaded ?? undefined;
}

function open(): Libdeflate | undefined {
  const path = libdeflatePath();
  if (path === undefined) return undefined;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    // Not permitted, or not a usable libdeflate (no library there, or one without these
    // symbols): decoding falls back to sharp.
    const unusable = e instanceof Error &&
      /^(Could not open library|Failed to register symbol)/.test(e.message);
    if (e instanceof Deno.errors.NotCapable || unusable) return undefined;
    throw e;
  }
  const { symbols } = lib;
  // A decompressor is not thread-safe: each concurrent inflate takes one from the free list.
  const free: Deno.PointerValue[] = [];
  return {
    path,
    async zlibInflate(input, outputSize) {
      const decompressor = free.pop() ?? symbols.libdeflate_alloc_decompressor();
      if (decompressor === null) throw new Error(`${path}: cannot allocate a decompressor`);
      const output = new Uint8Array(outputSize);
      const lengths = new BigUint64Array(2);
      try {
        const result = await symbols.libdeflate_zlib_decompress_ex(
          decompressor,
          input,
          BigInt(input.length),
          output,
          BigInt(outputSize),
          new Uint8Array(lengths.buffer, 0, 8),
          new Uint8Array(lengths.buffer, 8, 8),
        );
        const complete = result === SUCCESS && lengths[0] === BigInt(input.length) &&
          lengths[1] === BigInt(outputSize);
        return complete ? output : undefined;
      } finally {
        free.push(decompressor);
      }
    },
    crc32(bytes, crc = 0) {
      return symbols.libdeflate_crc32(crc, bytes, BigInt(bytes.length));
    },
  };
}

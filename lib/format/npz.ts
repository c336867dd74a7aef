/**
 * NumPy `.npz` archives: a zip of `.npy` members, one per named array, as written by
 * `numpy.savez` (stored) or `numpy.savez_compressed` (deflated) and opened by `numpy.load`.
 *
 * @module
 */

import { unzipSync, type Zippable, zipSync } from "fflate";
import {
  decodeNpyArray,
  encodeNpy,
  encodeNpyStrings,
  type NpyArray,
  NpyError,
  type NpyStringArray,
} from "./npy.ts";

/** One array of an archive: numeric, or text (`<U{n}`, e.g. image ids). */
export type NpzArray = NpyArray | NpyStringArray;

/** Raised when an archive cannot be written or read; the message names the array. */
export class NpzError extends Error {
  override readonly name = "NpzError";
}

/** Options of {@link encodeNpz}. */
export interface EncodeNpzOptions {
  /** Deflate the members like `numpy.savez_compressed` (level 6). Default: `false`, stored. */
  compress?: boolean;
}

// The zip format without its zip64 extension, which fflate does not write, caps sizes here.
const ZIP32_LIMIT = 0xffffffff;

// A fixed modification time keeps the archive's bytes a function of its arrays alone.
const FIXED_MTIME = new Date(1980, 0, 1, 0, 0, 0);

/**
 * Encodes named arrays as `.npz` bytes. Names become members `<name>.npy`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeNpz({
 *   ids: { dtype: "<U", shape: [2], data: ["00001", "00002"] },
 *   latents: { dtype: "<f4", shape: [2, 4, 8, 8], data: new Float32Array(512) },
 * });
 * assert.deepEqual(Object.keys(decodeNpz(bytes)), ["ids", "latents"]);
 * ```
 */
export function encodeNpz(
  entries: Record<string, NpzArray>,
  { compress = false }: EncodeNpzOptions = {},
): Uint8Array {
  const files: Zippable = {};
  let total = 0;
  for (const [name, array] of Object.entries(entries)) {
    if (name.length === 0 || name.includes("/") || name.includes("\\")) {
      throw new NpzError(`array name ${JSON.stringify(name)}: expected a non-empty plain name`);
    }
    let bytes: Uint8Array;
    try {
      bytes = array.dtype === "<U" ? encodeNpyStrings(array) : encodeNpy(array);
    } catch (error) {
      if (error instanceof NpyError) throw new NpzError(`array "${name}": ${error.message}`);
      throw error;
    }
    total += bytes.length;
    if (total > ZIP32_LIMIT) {
      throw new NpzError(
        `array "${name}": archive would exceed ${ZIP32_LIMIT} bytes, the zip limit without zip64`,
      );
    }
    files[`${name}.npy`] = [bytes, { level: compress ? 6 : 0, mtime: FIXED_MTIME }];
  }
  return zipSync(files);
}

/**
 * A small value as an archive member: text as `<U`, a whole number that counts something
 * (`integer`) as `<i8`, any other number as `<f8` and a list of numbers as `<f4`. Counts must be
 * said to be integers: JSON and JavaScript cannot tell a scaling factor of `1` from a count of 1,
 * and numpy users expect `int64` for one and `float64` for the other.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(npzValue(4, { integer: true }), { dtype: "<i8", shape: [], data: BigInt64Array.from([4n]) });
 * assert.equal(npzValue(1).dtype, "<f8");
 * assert.throws(() => npzValue(2.5, { integer: true }), /expected a whole number, found 2\.5/);
 * ```
 */
export function npzValue(
  value: string | number | number[],
  { integer = false }: { integer?: boolean } = {},
): NpzArray {
  if (typeof value === "string") return { dtype: "<U", shape: [], data: [value] };
  if (Array.isArray(value)) {
    return { dtype: "<f4", shape: [value.length], data: Float32Array.from(value) };
  }
  if (!integer) return { dtype: "<f8", shape: [], data: Float64Array.from([value]) };
  if (!Number.isSafeInteger(value)) {
    throw new NpzError(`expected a whole number, found ${value}`);
  }
  return { dtype: "<i8", shape: [], data: BigInt64Array.from([BigInt(value)]) };
}

/**
 * Decodes `.npz` bytes into named arrays (member `<name>.npy` becomes `name`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeNpz({ ids: { dtype: "<U", shape: [1], data: ["00017"] } });
 * const { ids } = decodeNpz(bytes);
 * assert.deepEqual(ids.data, ["00017"]);
 * assert.throws(() => decodeNpz(new Uint8Array(8), "x.npz"), /x\.npz: expected a zip archive/);
 * ```
 */
export function decodeNpz(bytes: Uint8Array, source = "npz data"): Record<string, NpzArray> {
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(bytes);
  } catch (error) {
    throw new NpzError(
      `${source}: expected a zip archive, found unreadable bytes (${(error as Error).message})`,
    );
  }
  const out: Record<string, NpzArray> = {};
  for (const [member, data] of Object.entries(members)) {
    if (!member.endsWith(".npy")) {
      throw new NpzError(`${source}: expected only .npy members, found "${member}"`);
    }
    const name = member.slice(0, -".npy".length);
    try {
      out[name] = decodeNpyArray(data, `${source}: ${member}`);
    } catch (error) {
      if (error instanceof NpyError) throw new NpzError(error.message);
      throw error;
    }
  }
  return out;
}

/**
 * HDF5 files that h5py opens, written with h5wasm (the HDF5 C library compiled to WebAssembly):
 * datasets at the root (numeric arrays, or text as UTF-8 strings) and attributes on the root.
 *
 * h5wasm's Node build writes straight to the host file system, so a dataset larger than
 * `sliceBytes` is written in row blocks and never needs a second full copy in the WebAssembly heap.
 *
 * @module
 */

import h5wasm, { type File as H5File } from "h5wasm/node";
import { dirname, resolve } from "node:path";
import type { NpyArray, NpyDtype, NpyStringArray } from "./npy.ts";
import { fsyncDir } from "../store/objects.ts";
import { removeIfPresent } from "../base/fs.ts";

/** A dataset: a numeric array, or strings (`dtype: "<U"`), stored as h5py's UTF-8 strings. */
export type Hdf5Dataset = NpyArray | NpyStringArray;

/**
 * An attribute value. A `number` is stored as float64 (a scaling factor of `1` stays a float),
 * a `bigint` as int64, a `string` as a variable-length UTF-8 string (JSON text fits here).
 */
export type Hdf5Attribute = string | number | bigint;

/** What a file holds: datasets and attributes, both at the root group. */
export interface Hdf5Contents {
  datasets: Record<string, Hdf5Dataset>;
  attributes?: Record<string, Hdf5Attribute>;
}

/** Options of {@link encodeHdf5} and {@link writeHdf5File}. */
export interface Hdf5Options {
  /**
   * How string datasets are stored: `"variable"` (h5py's `string_dtype()`, read back as `str`
   * via `.asstr()`) or `"fixed"` (`|S{n}` with `n` the longest UTF-8 byte length).
   * Default: `"variable"`.
   */
  strings?: "variable" | "fixed";
  /** gzip level 1–9 for numeric datasets (chunked), or 0 for none. Default: `0`. */
  gzip?: number;
  /** Numeric datasets larger than this many bytes are written in row blocks. Default: 64 MiB. */
  sliceBytes?: number;
}

/** Raised when a file cannot be written; the message names the dataset or attribute. */
export class Hdf5Error extends Error {
  override readonly name = "Hdf5Error";
}

const H5_DTYPE: Record<NpyDtype, string> = {
  "<f4": "<f",
  "<f8": "<d",
  "<i4": "<i",
  "<i8": "<q",
  "|u1": "<B",
};

const ELEMENT_BYTES: Record<NpyDtype, number> = {
  "<f4": 4,
  "<f8": 8,
  "<i4": 4,
  "<i8": 8,
  "|u1": 1,
};

// About 1 MiB per chunk: large enough for fast reads, small enough to read one image cheaply.
const CHUNK_BYTES = 1 << 20;

let ready: Promise<unknown> | undefined;

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function checkName(name: string, what: string): void {
  if (name.length === 0 || name.includes("/") || name === ".") {
    throw new Hdf5Error(`${what} name ${JSON.stringify(name)}: expected a non-empty plain name`);
  }
}

function checkShape(name: string, shape: number[], length: number): void {
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Hdf5Error(
      `dataset "${name}": expected a shape of non-negative integers, found [${shape.join(", ")}]`,
    );
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== length) {
    throw new Hdf5Error(
      `dataset "${name}": shape [${shape.join(", ")}] needs ${count} elements, found ${length}`,
    );
  }
}

function writeStrings(
  file: H5File,
  name: string,
  array: NpyStringArray,
  strings: "variable" | "fixed",
): void {
  checkShape(name, array.shape, array.data.length);
  let dtype = "S";
  if (strings === "fixed") {
    const encoder = new TextEncoder();
    let width = 1;
    for (const s of array.data) width = Math.max(width, encoder.encode(s).length);
    dtype = `S${width}`;
  }
  file.create_dataset({ name, data: array.data, shape: array.shape, dtype });
}

function writeNumeric(
  file: H5File,
  name: string,
  array: NpyArray,
  gzip: number,
  sliceBytes: number,
): void {
  const { dtype, shape, data } = array;
  if (!(dtype in H5_DTYPE)) {
    throw new Hdf5Error(
      `dataset "${name}": expected dtype one of ${
        Object.keys(H5_DTYPE).join(", ")
      }, found ${dtype}`,
    );
  }
  checkShape(name, shape, data.length);
  const h5dtype = H5_DTYPE[dtype];
  const rows = shape[0] ?? 1;
  const rowLength = shape.slice(1).reduce((a, b) => a * b, 1);
  const rowBytes = Math.max(1, rowLength * ELEMENT_BYTES[dtype]);
  const sliced = shape.length > 0 && data.byteLength > sliceBytes;
  const chunked = shape.length > 0 && rows > 0 && (gzip > 0 || sliced);
  if (!chunked) {
    file.create_dataset({ name, data, shape, dtype: h5dtype });
    return;
  }
  let chunkRows = Math.max(1, Math.min(rows, Math.floor(CHUNK_BYTES / rowBytes)));
  let blockRows = rows;
  if (sliced) {
    const fit = Math.max(1, Math.floor(sliceBytes / rowBytes));
    chunkRows = Math.min(chunkRows, fit);
    // Whole chunks per block keep gzip from recompressing a chunk that two blocks share.
    blockRows = Math.floor(fit / chunkRows) * chunkRows;
  }
  const chunks = [chunkRows, ...shape.slice(1)];
  const compression = gzip > 0 ? { compression: "gzip" as const, compression_opts: gzip } : {};
  const first = Math.min(rows, blockRows);
  const dataset = file.create_dataset({
    name,
    data: data.subarray(0, first * rowLength),
    shape: [first, ...shape.slice(1)],
    maxshape: shape,
    chunks,
    dtype: h5dtype,
    ...compression,
  });
  if (first === rows) return;
  dataset.resize(shape);
  for (let start = first; start < rows; start += blockRows) {
    const stop = Math.min(rows, start + blockRows);
    dataset.write_slice([[start, stop]], data.subarray(start * rowLength, stop * rowLength));
  }
}

function writeAttribute(file: H5File, name: string, value: Hdf5Attribute): void {
  if (typeof value === "string") {
    file.create_attribute(name, value, null, "S");
  } else if (typeof value === "number") {
    file.create_attribute(name, value, null, "<d");
  } else if (typeof value === "bigint") {
    if (value < -(1n << 63n) || value >= 1n << 63n) {
      throw new Hdf5Error(`attribute "${name}": ${value} does not fit in int64`);
    }
    file.create_attribute(name, new BigInt64Array([value]), [], "<q");
  } else {
    throw new Hdf5Error(
      `attribute "${name}": expected a string, number or bigint, found ${typeof value}`,
    );
  }
}

async function writeAt(path: string, contents: Hdf5Contents, options: Hdf5Options): Promise<void> {
  const { strings = "variable", gzip = 0, sliceBytes = 64 << 20 } = options;
  if (!Number.isInteger(gzip) || gzip < 0 || gzip > 9) {
    throw new Hdf5Error(`option gzip: expected an integer 0–9, found ${gzip}`);
  }
  if (strings !== "variable" && strings !== "fixed") {
    throw new Hdf5Error(`option strings: expected "variable" or "fixed", found ${strings}`);
  }
  for (const name of Object.keys(contents.datasets)) checkName(name, "dataset");
  for (const name of Object.keys(contents.attributes ?? {})) checkName(name, "attribute");
  ready ??= h5wasm.ready;
  await ready;
  // HDF5 stamps objects with the time they were written; with the clock pinned for the
  // (synchronous) writes, equal contents give byte-identical files.
  const realNow = Date.now;
  Date.now = () => 0;
  let file: H5File;
  try {
    file = new h5wasm.File(path, "w");
  } catch (error) {
    Date.now = realNow;
    throw new Hdf5Error(`${path}: cannot create the file (${describe(error)})`);
  }
  try {
    for (const [name, array] of Object.entries(contents.datasets)) {
      try {
        if (array.dtype === "<U") writeStrings(file, name, array, strings);
        else writeNumeric(file, name, array, gzip, sliceBytes);
      } catch (error) {
        if (error instanceof Hdf5Error) throw error;
        throw new Hdf5Error(`${path}: dataset "${name}": ${describe(error)}`);
      }
    }
    for (const [name, value] of Object.entries(contents.attributes ?? {})) {
      try {
        writeAttribute(file, name, value);
      } catch (error) {
        if (error instanceof Hdf5Error) throw error;
        throw new Hdf5Error(`${path}: attribute "${name}": ${describe(error)}`);
      }
    }
  } finally {
    file.close();
    Date.now = realNow;
  }
}

/**
 * Writes an HDF5 file atomically: the file is written beside `path`, fsynced, then renamed over it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await writeHdf5File(`${dir}/latents.h5`, {
 *     datasets: { latents: { dtype: "<f4", shape: [1, 4, 8, 8], data: new Float32Array(256) } },
 *     attributes: { scaling_factor: 0.18215, config: JSON.stringify({ lr: 0.1 }) },
 *   });
 *   const head = (await Deno.readFile(`${dir}/latents.h5`)).subarray(0, 8);
 *   assert.deepEqual([...head], [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function writeHdf5File(
  path: string,
  contents: Hdf5Contents,
  options: Hdf5Options = {},
): Promise<void> {
  const target = resolve(path);
  const tmp = `${target}.tmp-${crypto.randomUUID()}`;
  try {
    await writeAt(tmp, contents, options);
    const handle = await Deno.open(tmp, { read: true, write: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
    await Deno.rename(tmp, target);
  } catch (error) {
    await removeIfPresent(tmp);
    throw error;
  }
  await fsyncDir(dirname(target));
}

/**
 * Encodes datasets and attributes as the bytes of an HDF5 file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = await encodeHdf5({
 *   datasets: { ids: { dtype: "<U", shape: [2], data: ["00001", "00002"] } },
 *   attributes: { scaling_factor: 0.18215 },
 * });
 * assert.equal(new TextDecoder().decode(bytes.subarray(1, 4)), "HDF");
 * ```
 */
export async function encodeHdf5(
  contents: Hdf5Contents,
  options: Hdf5Options = {},
): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-h5-" });
  try {
    const path = `${dir}/data.h5`;
    await writeAt(path, contents, options);
    return await Deno.readFile(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

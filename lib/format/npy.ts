/**
 * NumPy `.npy` (format version 1.0) encoding and decoding for the dtypes latentforge stores.
 *
 * Numeric arrays use {@link encodeNpy} / {@link decodeNpy}; arrays of text (NumPy's `<U{n}`
 * dtype, UTF-32LE code points, as used for image ids) use {@link encodeNpyStrings} /
 * {@link decodeNpyStrings}. {@link decodeNpyArray} accepts either.
 *
 * @module
 */

/** The element types an `.npy` array may hold here. */
export type NpyDtype = "<f4" | "<f8" | "<i4" | "<i8" | "|u1";

/** A decoded array: dtype, C-order shape and the flat data. */
export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
}

/**
 * An array of text: NumPy's `<U{n}` dtype. The width `n` is chosen on encoding as the longest
 * string's count of code points; on decoding, trailing NUL characters are removed (as NumPy does).
 */
export interface NpyStringArray {
  dtype: "<U";
  shape: number[];
  data: string[];
}

/** Raised when bytes are not a valid `.npy` file of a supported dtype. */
export class NpyError extends Error {
  override readonly name = "NpyError";
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

const BYTES: Record<NpyDtype, number> = { "<f4": 4, "<f8": 8, "<i4": 4, "<i8": 8, "|u1": 1 };

const ARRAY_TYPE: Record<NpyDtype, { name: string; prototype: unknown }> = {
  "<f4": Float32Array,
  "<f8": Float64Array,
  "<i4": Int32Array,
  "<i8": BigInt64Array,
  "|u1": Uint8Array,
};

function elementCount(shape: number[], source: string): number {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new NpyError(
        `${source}: expected shape of non-negative integers, found [${shape.join(", ")}]`,
      );
    }
  }
  return shape.reduce((a, b) => a * b, 1);
}

function headerBytes(descr: string, shape: number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // The data must start on a 64-byte boundary: magic (6) + version (2) + length (2) + header.
  const unpadded = MAGIC.length + 4 + header.length + 1;
  header += " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  return new TextEncoder().encode(header);
}

function withHeader(descr: string, shape: number[], dataLength: number): {
  out: Uint8Array;
  dataStart: number;
} {
  const header = headerBytes(descr, shape);
  const out = new Uint8Array(MAGIC.length + 4 + header.length + dataLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(header, 10);
  return { out, dataStart: 10 + header.length };
}

/**
 * Encodes a flat array with its shape as `.npy` bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeNpy({ dtype: "<f4", shape: [2, 2], data: new Float32Array(4) });
 * assert.equal(new TextDecoder().decode(bytes.subarray(1, 6)), "NUMPY");
 * assert.equal(bytes.length % 64, 16);
 * ```
 */
export function encodeNpy(array: NpyArray): Uint8Array {
  const { dtype, shape, data } = array;
  if (!(dtype in BYTES)) {
    throw new NpyError(`expected dtype one of ${Object.keys(BYTES).join(", ")}, found ${dtype}`);
  }
  // A typed array of another element type would be copied byte for byte into the wrong dtype.
  if (!(data instanceof (ARRAY_TYPE[dtype] as typeof Uint8Array))) {
    throw new NpyError(
      `dtype ${dtype} needs a ${ARRAY_TYPE[dtype].name}, found a ${data.constructor.name}`,
    );
  }
  const count = elementCount(shape, "npy data");
  if (data.length !== count) {
    throw new NpyError(
      `shape [${shape.join(", ")}] needs ${count} elements, found ${data.length}`,
    );
  }
  const { out, dataStart } = withHeader(dtype, shape, count * BYTES[dtype]);
  out.set(new Uint8Array(data.buffer, data.byteOffset, count * BYTES[dtype]), dataStart);
  return out;
}

/**
 * Encodes an array of strings as `.npy` bytes of dtype `<U{n}` (UTF-32LE code points), where
 * `n` is the longest string's count of code points (at least 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeNpyStrings({ dtype: "<U", shape: [2], data: ["00001", "00002"] });
 * assert.deepEqual(decodeNpyStrings(bytes).data, ["00001", "00002"]);
 * ```
 */
export function encodeNpyStrings(array: NpyStringArray): Uint8Array {
  const { shape, data } = array;
  const count = elementCount(shape, "npy data");
  if (data.length !== count) {
    throw new NpyError(
      `shape [${shape.join(", ")}] needs ${count} strings, found ${data.length}`,
    );
  }
  const points = data.map((s, i) => {
    if (typeof s !== "string") {
      throw new NpyError(`string ${i}: expected a string, found ${typeof s}`);
    }
    // NumPy strips trailing NULs on reading, so such a string could not come back as written.
    if (s.endsWith("\0")) {
      throw new NpyError(`string ${i} ${JSON.stringify(s)}: expected no trailing NUL character`);
    }
    return Array.from(s, (c) => c.codePointAt(0)!);
  });
  let width = 1;
  for (const p of points) width = Math.max(width, p.length);
  const { out, dataStart } = withHeader(`<U${width}`, shape, count * width * 4);
  const view = new DataView(out.buffer);
  points.forEach((p, i) => {
    const base = dataStart + i * width * 4;
    p.forEach((cp, j) => view.setUint32(base + j * 4, cp, true));
  });
  return out;
}

interface ParsedNpy {
  descr: string;
  shape: number[];
  dataStart: number;
}

function parseHeader(bytes: Uint8Array, source: string): ParsedNpy {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NpyError(`${source}: expected the .npy magic bytes, found something else`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  if (major < 1 || major > 3) {
    throw new NpyError(`${source}: expected .npy format version 1, 2 or 3, found ${major}`);
  }
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  if (headerStart + headerLength > bytes.length) {
    throw new NpyError(
      `${source}: header of ${headerLength} bytes runs past the end of ${bytes.length} bytes`,
    );
  }
  const header = new TextDecoder().decode(
    bytes.subarray(headerStart, headerStart + headerLength),
  );
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined) throw new NpyError(`${source}: header has no descr`);
  if (fortran !== "False") throw new NpyError(`${source}: expected C order, found Fortran order`);
  if (shapeText === undefined) throw new NpyError(`${source}: header has no shape`);
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(
    Number,
  );
  elementCount(shape, source);
  return { descr, shape, dataStart: headerStart + headerLength };
}

function checkLength(bytes: Uint8Array, parsed: ParsedNpy, byteLength: number, source: string) {
  const found = bytes.length - parsed.dataStart;
  if (found !== byteLength) {
    throw new NpyError(
      `${source}: shape [${parsed.shape.join(", ")}] of ${parsed.descr} needs ${byteLength} ` +
        `data bytes, found ${found}`,
    );
  }
}

function decodeNumeric(bytes: Uint8Array, parsed: ParsedNpy, source: string): NpyArray {
  const { descr, shape, dataStart } = parsed;
  if (!(descr in BYTES)) {
    throw new NpyError(
      `${source}: expected dtype one of ${Object.keys(BYTES).join(", ")}, found ${descr}`,
    );
  }
  const dtype = descr as NpyDtype;
  const byteLength = elementCount(shape, source) * BYTES[dtype];
  checkLength(bytes, parsed, byteLength, source);
  const copy = bytes.slice(dataStart, dataStart + byteLength).buffer;
  const data = dtype === "<f4"
    ? new Float32Array(copy)
    : dtype === "<f8"
    ? new Float64Array(copy)
    : dtype === "<i4"
    ? new Int32Array(copy)
    : dtype === "<i8"
    ? new BigInt64Array(copy)
    : new Uint8Array(copy);
  return { dtype, shape, data };
}

function decodeStrings(bytes: Uint8Array, parsed: ParsedNpy, source: string): NpyStringArray {
  const { descr, shape, dataStart } = parsed;
  const match = /^[<|]U(\d+)$/.exec(descr);
  if (!match) throw new NpyError(`${source}: expected dtype <U{n}, found ${descr}`);
  const width = Number(match[1]);
  const count = elementCount(shape, source);
  checkLength(bytes, parsed, count * width * 4, source);
  const view = new DataView(bytes.buffer, bytes.byteOffset + dataStart, count * width * 4);
  const data: string[] = [];
  for (let i = 0; i < count; i++) {
    const points: number[] = [];
    for (let j = 0; j < width; j++) points.push(view.getUint32((i * width + j) * 4, true));
    while (points.length > 0 && points[points.length - 1] === 0) points.pop();
    if (points.some((p) => p > 0x10ffff)) {
      throw new NpyError(`${source}: string ${i} holds a code point beyond U+10FFFF`);
    }
    data.push(String.fromCodePoint(...points));
  }
  return { dtype: "<U", shape, data };
}

/**
 * Decodes `.npy` bytes (version 1.x or 2.x, little-endian, C order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeNpy({ dtype: "<f4", shape: [1, 2], data: Float32Array.of(1, 2) });
 * const { shape, data } = decodeNpy(bytes);
 * assert.deepEqual(shape, [1, 2]);
 * assert.deepEqual([...data], [1, 2]);
 * ```
 */
export function decodeNpy(bytes: Uint8Array, source = "npy data"): NpyArray {
  return decodeNumeric(bytes, parseHeader(bytes, source), source);
}

/**
 * Decodes float32 `.npy` bytes straight into `out` at element `offset`, without an intermediate
 * copy; returns the array's shape. For filling one big array from many small files.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeNpy({ dtype: "<f4", shape: [1, 2], data: Float32Array.of(1, 2) });
 * const out = new Float32Array(4);
 * decodeNpyInto(bytes, out, 2);
 * assert.deepEqual([...out], [0, 0, 1, 2]);
 * ```
 */
export function decodeNpyInto(
  bytes: Uint8Array,
  out: Float32Array,
  offset: number,
  source = "npy data",
): number[] {
  const parsed = parseHeader(bytes, source);
  if (parsed.descr !== "<f4") {
    throw new NpyError(`${source}: expected dtype <f4, found ${parsed.descr}`);
  }
  const count = elementCount(parsed.shape, source);
  checkLength(bytes, parsed, count * 4, source);
  if (offset + count > out.length) {
    throw new NpyError(
      `${source}: ${count} elements do not fit at ${offset} of an array of ${out.length}`,
    );
  }
  new Uint8Array(out.buffer, out.byteOffset + offset * 4, count * 4)
    .set(bytes.subarray(parsed.dataStart, parsed.dataStart + count * 4));
  return parsed.shape;
}

/**
 * Decodes `.npy` bytes of dtype `<U{n}` into strings, trailing NULs removed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeNpyStrings({ dtype: "<U", shape: [2], data: ["00001", "00002"] });
 * const { data: ids } = decodeNpyStrings(bytes);
 * assert.deepEqual(ids, ["00001", "00002"]);
 * ```
 */
export function decodeNpyStrings(bytes: Uint8Array, source = "npy data"): NpyStringArray {
  return decodeStrings(bytes, parseHeader(bytes, source), source);
}

/**
 * Decodes `.npy` bytes of any supported dtype, numeric or `<U{n}`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeNpyStrings({ dtype: "<U", shape: [2], data: ["a", "b"] });
 * const array = decodeNpyArray(bytes);
 * assert.equal(array.dtype === "<U" ? array.data.join(", ") : "", "a, b");
 * ```
 */
export function decodeNpyArray(
  bytes: Uint8Array,
  source = "npy data",
): NpyArray | NpyStringArray {
  const parsed = parseHeader(bytes, source);
  return /^[<|]U\d+$/.test(parsed.descr)
    ? decodeStrings(bytes, parsed, source)
    : decodeNumeric(bytes, parsed, source);
}

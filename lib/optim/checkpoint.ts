/**
 * One image's optimization checkpoint as bytes: named numbers and arrays, so each method (Adam,
 * L-BFGS with its line search) keeps whatever its state holds, and a run resumed from them reaches
 * the same final latent, bit for bit, as a run never interrupted.
 *
 * Layout (little-endian), 8-byte aligned sections:
 *
 * | offset | content |
 * |---|---|
 * | 0 | magic `LFCKPT` + version 0x00 0x02 |
 * | 8 | u32 directory byte length d · u32 zero |
 * | 16 | directory: UTF-8 JSON `{ method, numbers: [names], arrays: [[name, "f32" or "f64", length]] }`, zero-padded to 8 bytes |
 * | 16 + d′ | f64 of each number, in directory order |
 * | then | each array's raw values, in directory order, each zero-padded to 8 bytes |
 *
 * Numbers are stored as float64 bits, never as text, so NaN payloads, -0 and ±Infinity survive.
 *
 * @module
 */

/** A method's (or the loop's) state: its name, scalars and arrays. */
export interface CheckpointParts {
  /** The method that wrote it (`"adam"`, `"lbfgs"`). */
  method: string;
  /** Scalars, float64 (integers up to 2⁵³ are exact). */
  numbers: Record<string, number>;
  /** Vectors: float32 latents and gradients, float64 histories. */
  arrays: Record<string, Float32Array | Float64Array>;
}

/** Raised when bytes are not a checkpoint, or a checkpoint lacks a part its reader needs. */
export class CheckpointError extends Error {
  override readonly name = "CheckpointError";
}

const MAGIC = [0x4c, 0x46, 0x43, 0x4b, 0x50, 0x54, 0x00, 0x02]; // "LFCKPT" v2
const HEAD = 16;
const pad8 = (n: number) => Math.ceil(n / 8) * 8;

interface Directory {
  method: string;
  numbers: string[];
  arrays: [string, "f32" | "f64", number][];
}

/**
 * Encodes checkpoint parts as bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeCheckpoint({
 *   method: "adam",
 *   numbers: { step: 3, best: -0 },
 *   arrays: { latent: new Float32Array([1, NaN]) },
 * });
 * const back = decodeCheckpoint(bytes);
 * assert.ok(Object.is(back.numbers.best, -0));
 * assert.ok(Number.isNaN(back.arrays.latent[1]));
 * assert.equal(bytes.length % 8, 0);
 * ```
 */
export function encodeCheckpoint(parts: CheckpointParts): Uint8Array {
  const numbers = Object.keys(parts.numbers);
  const arrays = Object.entries(parts.arrays);
  const directory: Directory = {
    method: parts.method,
    numbers,
    arrays: arrays.map(([name, a]) => [name, a instanceof Float32Array ? "f32" : "f64", a.length]),
  };
  const text = new TextEncoder().encode(JSON.stringify(directory));
  const size = HEAD + pad8(text.length) + 8 * numbers.length +
    arrays.reduce((sum, [, a]) => sum + pad8(a.byteLength), 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, text.length, true);
  out.set(text, HEAD);
  let offset = HEAD + pad8(text.length);
  for (const name of numbers) {
    view.setFloat64(offset, parts.numbers[name], true);
    offset += 8;
  }
  // Raw byte copies (every platform Deno runs on is little-endian) keep each bit, NaN payloads too.
  for (const [, a] of arrays) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offset);
    offset += pad8(a.byteLength);
  }
  return out;
}

/**
 * Decodes checkpoint bytes written by {@link encodeCheckpoint}; `source` names them in errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeCheckpoint({ method: "adam", numbers: { step: 3 }, arrays: {} });
 * const parts = decodeCheckpoint(bytes, "checkpoint of 00017");
 * assert.deepEqual(parts, { method: "adam", numbers: { step: 3 }, arrays: {} });
 * ```
 */
export function decodeCheckpoint(bytes: Uint8Array, source = "checkpoint"): CheckpointParts {
  if (bytes.length < HEAD || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new CheckpointError(
      `${source}: expected the LFCKPT v2 magic bytes, found something else`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(8, true);
  const directory = parseDirectory(bytes.subarray(HEAD, HEAD + length), source);
  let offset = HEAD + pad8(length);
  const expected = offset + 8 * directory.numbers.length +
    directory.arrays.reduce((sum, [, type, n]) => sum + pad8(n * (type === "f32" ? 4 : 8)), 0);
  if (bytes.length !== expected) {
    throw new CheckpointError(
      `${source}: its directory describes ${expected} bytes, found ${bytes.length}`,
    );
  }
  const numbers: Record<string, number> = {};
  for (const name of directory.numbers) {
    numbers[name] = view.getFloat64(offset, true);
    offset += 8;
  }
  const arrays: Record<string, Float32Array | Float64Array> = {};
  for (const [name, type, n] of directory.arrays) {
    const byteLength = n * (type === "f32" ? 4 : 8);
    const copy = bytes.slice(offset, offset + byteLength).buffer;
    arrays[name] = type === "f32" ? new Float32Array(copy) : new Float64Array(copy);
    offset += pad8(byteLength);
  }
  return { method: directory.method, numbers, arrays };
}

function parseDirectory(text: Uint8Array, source: string): Directory {
  let directory: Directory;
  try {
    directory = JSON.parse(new TextDecoder().decode(text));
  } catch (e) {
    // The bytes passed the magic check, so a broken directory means a damaged file.
    throw new CheckpointError(`${source}: its directory is not JSON (${(e as Error).message})`);
  }
  const valid = typeof directory?.method === "string" &&
    Array.isArray(directory.numbers) && directory.numbers.every((n) => typeof n === "string") &&
    Array.isArray(directory.arrays) &&
    directory.arrays.every((a) =>
      Array.isArray(a) && typeof a[0] === "string" && (a[1] === "f32" || a[1] === "f64") &&
      Number.isInteger(a[2]) && a[2] >= 0
    );
  if (!valid) {
    throw new CheckpointError(
      `${source}: expected a directory of method, numbers and arrays, found ${
        JSON.stringify(directory).slice(0, 120)
      }`,
    );
  }
  return directory;
}

/** Reads the parts a checkpoint must hold; see {@link checkpointReader}. */
export interface CheckpointReader {
  /** The number `name`. */
  number(name: string): number;
  /** The float32 array `name`, of `length` values when given. */
  float32(name: string, length?: number): Float32Array;
  /** The float64 array `name`, of `length` values when given. */
  float64(name: string, length?: number): Float64Array;
}

/**
 * Reads parts a checkpoint must hold: each throws a {@link CheckpointError} naming the
 * checkpoint and the part when it is missing or of another type or length.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const parts = { method: "adam", numbers: { step: 3 }, arrays: { m: new Float32Array(2) } };
 * const read = checkpointReader(parts, "checkpoint of 00017");
 * assert.equal(read.number("step"), 3);
 * assert.equal(read.float32("m", 2).length, 2);
 * assert.throws(() => read.float32("v", 2), /checkpoint of 00017: expected array "v"/);
 * ```
 */
export function checkpointReader(parts: CheckpointParts, source: string): CheckpointReader {
  const array = (name: string, type: "f32" | "f64", length?: number) => {
    const a = parts.arrays[name];
    const found = a === undefined
      ? "none"
      : `${a instanceof Float32Array ? "f32" : "f64"} of ${a.length}`;
    const ok = a !== undefined && (a instanceof Float32Array) === (type === "f32") &&
      (length === undefined || a.length === length);
    if (!ok) {
      throw new CheckpointError(
        `${source}: expected array "${name}" (${type}${
          length === undefined ? "" : ` of ${length}`
        }), found ${found}`,
      );
    }
    return a;
  };
  return {
    number(name) {
      const value = parts.numbers[name];
      if (typeof value !== "number") {
        throw new CheckpointError(`${source}: expected number "${name}", found none`);
      }
      return value;
    },
    float32: (name, length) => array(name, "f32", length) as Float32Array,
    float64: (name, length) => array(name, "f64", length) as Float64Array,
  };
}

/**
 * The numbers and arrays of `parts` under `prefix.` (one state nested in another's checkpoint),
 * and, with {@link partsUnder}, back out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const nested = prefixParts("memory", { numbers: { pairs: 2 }, arrays: {} });
 * assert.deepEqual(nested, { numbers: { "memory.pairs": 2 }, arrays: {} });
 * ```
 */
export function prefixParts(
  prefix: string,
  parts: Pick<CheckpointParts, "numbers" | "arrays">,
): Pick<CheckpointParts, "numbers" | "arrays"> {
  const rename = <T>(record: Record<string, T>) =>
    Object.fromEntries(Object.entries(record).map(([k, v]) => [`${prefix}.${k}`, v]));
  return { numbers: rename(parts.numbers), arrays: rename(parts.arrays) };
}

/**
 * The parts of `parts` written under `prefix.` by {@link prefixParts}, without the prefix.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const parts = { method: "lbfgs", numbers: { "memory.pairs": 2, steps: 4 }, arrays: {} };
 * assert.deepEqual(partsUnder("memory", parts).numbers, { pairs: 2 });
 * ```
 */
export function partsUnder(prefix: string, parts: CheckpointParts): CheckpointParts {
  const strip = <T>(record: Record<string, T>) =>
    Object.fromEntries(
      Object.entries(record).flatMap(([k, v]) =>
        k.startsWith(`${prefix}.`) ? [[k.slice(prefix.length + 1), v]] : []
      ),
    );
  return { method: parts.method, numbers: strip(parts.numbers), arrays: strip(parts.arrays) };
}

/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON header (`{"name": {"dtype", "shape", "data_offsets"}, …,
 * "__metadata__": {string: string}}`, padded with spaces so the data starts 8-byte aligned), then
 * the tensors' bytes, contiguous, little-endian, C order, with no holes.
 *
 * @module
 */

/** The safetensors dtypes written and read here. */
export type SafetensorsDtype = "F32" | "F64" | "I32" | "I64" | "U8";

/** One tensor: dtype, C-order shape and flat data. */
export interface Tensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
}

/** A file's tensors by name and its free-form string metadata. */
export interface Safetensors {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/** Raised when tensors cannot be written or bytes are not a valid safetensors file. */
export class SafetensorsError extends Error {
  override readonly name = "SafetensorsError";
}

type TypedArrayConstructor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int32ArrayConstructor
  | BigInt64ArrayConstructor
  | Uint8ArrayConstructor;

const ARRAY: Record<SafetensorsDtype, TypedArrayConstructor> = {
  F32: Float32Array,
  F64: Float64Array,
  I32: Int32Array,
  I64: BigInt64Array,
  U8: Uint8Array,
};

// The reference implementation refuses headers beyond 100 MB; so does this reader.
const MAX_HEADER = 100_000_000;

function count(shape: number[], what: string): number {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new SafetensorsError(
      `${what}: expected a shape of non-negative integers, found ${JSON.stringify(shape)}`,
    );
  }
  return shape.reduce((a, b) => a * b, 1);
}

/** Where each tensor's bytes go, as {@linkcode safetensorsLayout} lays them out. */
export interface SafetensorsLayout {
  /** The 8-byte length and the padded JSON header: the file's first bytes. */
  head: Uint8Array;
  /** Tensor names in the order their bytes follow the header. */
  order: string[];
  /** Bytes of tensor data after the header. */
  dataBytes: number;
}

/**
 * Lays out a file's header from the tensors' dtypes and shapes alone: tensors ordered by element
 * size (largest first), then by name, so every tensor starts aligned to its element size; the
 * JSON padded with spaces so the data starts 8-byte aligned. {@linkcode encodeSafetensors} and
 * `writeSafetensorsFile` both use it, so their bytes are the same.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const { head, order } = safetensorsLayout({
 *   tensors: { latents: { dtype: "F32", shape: [2, 4, 32, 32] } },
 *   metadata: { ids: JSON.stringify(["a", "b"]) },
 * });
 * assert.deepEqual(order, ["latents"]);
 * assert.equal(head.length % 8, 0);
 * ```
 */
export function safetensorsLayout({ tensors, metadata = {} }: {
  tensors: Record<string, { dtype: SafetensorsDtype; shape: number[] }>;
  metadata?: Record<string, string>;
}): SafetensorsLayout {
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") {
      throw new SafetensorsError(`metadata "${key}": expected a string, found ${typeof value}`);
    }
  }
  const names = Object.keys(tensors);
  for (const name of names) {
    if (name === "__metadata__") {
      throw new SafetensorsError(`tensor name "__metadata__" is reserved for the metadata`);
    }
    const { dtype, shape } = tensors[name];
    if (ARRAY[dtype] === undefined) {
      throw new SafetensorsError(
        `tensor "${name}": expected dtype one of ${Object.keys(ARRAY).join(", ")}, found ${dtype}`,
      );
    }
    count(shape, `tensor "${name}"`);
  }
  names.sort((a, b) => {
    const size = ARRAY[tensors[b].dtype].BYTES_PER_ELEMENT -
      ARRAY[tensors[a].dtype].BYTES_PER_ELEMENT;
    return size !== 0 ? size : a < b ? -1 : a > b ? 1 : 0;
  });
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const { dtype, shape } = tensors[name];
    const bytes = count(shape, name) * ARRAY[dtype].BYTES_PER_ELEMENT;
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = json.length + (8 - (json.length % 8)) % 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { head, order: names, dataBytes: offset };
}

/**
 * Checks that a tensor's data is the typed array its dtype needs, with as many elements as its
 * shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * checkTensor("latents", { dtype: "F32", shape: [2], data: new Float32Array(2) });
 * assert.throws(() => checkTensor("latents", { dtype: "F32", shape: [3], data: new Float32Array(2) }));
 * ```
 */
export function checkTensor(name: string, { dtype, shape, data }: Tensor): void {
  const Array = ARRAY[dtype];
  if (Array === undefined) {
    throw new SafetensorsError(
      `tensor "${name}": expected dtype one of ${Object.keys(ARRAY).join(", ")}, found ${dtype}`,
    );
  }
  if (!(data instanceof Array)) {
    throw new SafetensorsError(
      `tensor "${name}": dtype ${dtype} needs a ${Array.name}, found a ${data.constructor.name}`,
    );
  }
  const n = count(shape, `tensor "${name}"`);
  if (data.length !== n) {
    throw new SafetensorsError(
      `tensor "${name}": shape [${shape.join(", ")}] needs ${n} elements, found ${data.length}`,
    );
  }
}

/**
 * Encodes tensors and string metadata as safetensors bytes, laid out by
 * {@linkcode safetensorsLayout}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeSafetensors({
 *   tensors: { latents: { dtype: "F32", shape: [1, 4, 8, 8], data: new Float32Array(256) } },
 *   metadata: { ids: JSON.stringify(["00001"]), scaling_factor: "0.18215" },
 * });
 * assert.equal(decodeSafetensors(bytes).metadata.scaling_factor, "0.18215");
 * ```
 */
export function encodeSafetensors({ tensors, metadata = {} }: {
  tensors: Record<string, Tensor>;
  metadata?: Record<string, string>;
}): Uint8Array {
  for (const [name, tensor] of Object.entries(tensors)) checkTensor(name, tensor);
  const { head, order, dataBytes } = safetensorsLayout({ tensors, metadata });
  const out = new Uint8Array(head.length + dataBytes);
  out.set(head);
  let position = head.length;
  for (const name of order) {
    const { data } = tensors[name];
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), position);
    position += data.byteLength;
  }
  return out;
}

/**
 * Decodes safetensors bytes, checking the header against the format's rules: known dtypes,
 * sizes that match shapes, and offsets that cover the data exactly with no holes or overlaps.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = encodeSafetensors({
 *   tensors: { latents: { dtype: "F32", shape: [2], data: Float32Array.of(0.5, 2) } },
 * });
 * const { tensors, metadata } = decodeSafetensors(bytes);
 * assert.deepEqual([...tensors.latents.data], [0.5, 2]);
 * assert.deepEqual(metadata, {});
 * ```
 */
export function decodeSafetensors(bytes: Uint8Array, source = "safetensors data"): Safetensors {
  const { header, dataStart } = readHeader(bytes, source);
  const metadata = readMetadata(header.__metadata__, source);
  const entries = readEntries(header, source);
  checkCoverage(entries, bytes.length - dataStart, source);
  const tensors: Record<string, Tensor> = {};
  for (const e of entries) {
    const copy = bytes.slice(dataStart + e.begin, dataStart + e.end).buffer;
    tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: new ARRAY[e.dtype](copy) };
  }
  return { tensors, metadata };
}

/** A tensor's place in the data section, as its header entry gives it. */
interface Entry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/** The JSON header object and where the data section starts. */
function readHeader(
  bytes: Uint8Array,
  source: string,
): { header: Record<string, unknown>; dataStart: number } {
  if (bytes.length < 8) {
    throw new SafetensorsError(`${source}: expected at least 8 bytes, found ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER, bytes.length - 8))) {
    throw new SafetensorsError(
      `${source}: header length ${headerLength} exceeds the ${bytes.length - 8} bytes after it ` +
        `(or the ${MAX_HEADER}-byte limit)`,
    );
  }
  const dataStart = 8 + Number(headerLength);
  const invalid = (why: string) =>
    new SafetensorsError(
      `${source}: expected a UTF-8 JSON object header, found invalid text (${why})`,
    );
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, dataStart));
  } catch (error) {
    // A fatal TextDecoder throws a TypeError for bytes that are not UTF-8.
    if (error instanceof TypeError) throw invalid(error.message);
    throw error;
  }
  if (!text.startsWith("{")) throw invalid(`header starts with ${JSON.stringify(text[0])}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    if (error instanceof SyntaxError) throw invalid(error.message);
    throw error;
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new SafetensorsError(`${source}: expected a JSON object header`);
  }
  return { header: header as Record<string, unknown>, dataStart };
}

/** The `__metadata__` object: strings only. */
function readMetadata(raw: unknown, source: string): Record<string, string> {
  const metadata: Record<string, string> = {};
  if (raw === undefined) return metadata;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new SafetensorsError(`${source}: expected __metadata__ to be an object of strings`);
  }
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== "string") {
      throw new SafetensorsError(
        `${source}: metadata "${key}": expected a string, found ${JSON.stringify(value)}`,
      );
    }
    metadata[key] = value;
  }
  return metadata;
}

/** The tensor entries of the header, each checked, in data order. */
function readEntries(header: Record<string, unknown>, source: string): Entry[] {
  const entries: Entry[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as Record<string, unknown>;
    const what = `${source}: tensor "${name}"`;
    if (typeof dtype !== "string" || !(dtype in ARRAY)) {
      throw new SafetensorsError(
        `${what}: expected dtype one of ${Object.keys(ARRAY).join(", ")}, found ${
          JSON.stringify(dtype)
        }`,
      );
    }
    const n = count(shape as number[], what);
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[1] < offsets[0]
    ) {
      throw new SafetensorsError(
        `${what}: expected data_offsets [begin, end], found ${JSON.stringify(offsets)}`,
      );
    }
    const size = n * ARRAY[dtype as SafetensorsDtype].BYTES_PER_ELEMENT;
    if (offsets[1] - offsets[0] !== size) {
      throw new SafetensorsError(
        `${what}: shape [${(shape as number[]).join(", ")}] of ${dtype} needs ${size} bytes, ` +
          `data_offsets span ${offsets[1] - offsets[0]}`,
      );
    }
    const [begin, end] = offsets as number[];
    entries.push({ name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end });
  }
  return entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
}

/** The entries cover the data section exactly: no holes, no overlaps, nothing after. */
function checkCoverage(entries: Entry[], dataLength: number, source: string): void {
  let expected = 0;
  for (const e of entries) {
    if (e.begin !== expected) {
      throw new SafetensorsError(
        `${source}: tensor "${e.name}" starts at ${e.begin}, expected ${expected} (no holes or overlaps)`,
      );
    }
    expected = e.end;
  }
  if (expected !== dataLength) {
    throw new SafetensorsError(
      `${source}: tensors cover ${expected} data bytes, found ${dataLength} after the header`,
    );
  }
}

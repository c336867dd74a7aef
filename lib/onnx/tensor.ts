/**
 * Host-side tensors and their conversion to and from ONNX `TensorProto`.
 *
 * @module
 */
import onnxProto from "onnx-proto";
import { ModelIoError } from "./errors.ts";

const { onnx } = onnxProto;

/** ONNX element types used here (values of `TensorProto.DataType`). */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
} as const;

/** Typed array holding a tensor's elements; int64 values are held as exact doubles. */
export type TensorData = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array;

/** A dense tensor in host memory (row-major). */
export interface HostTensor {
  dtype: number;
  dims: number[];
  data: TensorData;
}

/** Bytes per element of the numeric tensor types, by ONNX data type. */
export const ELEMENT_BYTES: Readonly<Record<number, number>> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
};

/** Number of elements of a shape. */
export function sizeOf(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Converts a protobuf int64 (number or Long) to a JS number. */
export function toNum(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (v && typeof v === "object" && "toNumber" in v) {
    return (v as { toNumber(): number }).toNumber();
  }
  return Number(v);
}

/** Allocates the typed array used for `dtype` holding `n` elements. */
export function allocData(dtype: number, n: number): TensorData {
  switch (dtype) {
    case DataType.FLOAT:
      return new Float32Array(n);
    case DataType.DOUBLE:
    case DataType.INT64:
      return new Float64Array(n);
    case DataType.INT32:
      return new Int32Array(n);
    case DataType.INT8:
      return new Int8Array(n);
    case DataType.UINT8:
    case DataType.BOOL:
      return new Uint8Array(n);
    default:
      throw new ModelIoError(`element type ${dtype} is not supported on the host`);
  }
}

/**
 * Makes a host tensor from a dtype, dims and values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const t = makeTensor(DataType.INT64, [2], [1, -1]);
 * assert.ok(t.data instanceof Float64Array); // int64 values held as exact doubles
 * assert.throws(() => makeTensor(DataType.FLOAT, [2, 2], [1]), /needs 4 values, found 1/);
 * ```
 */
export function makeTensor(dtype: number, dims: number[], values: ArrayLike<number>): HostTensor {
  const n = sizeOf(dims);
  if (values.length !== n) {
    throw new ModelIoError(`tensor of shape [${dims}] needs ${n} values, found ${values.length}`);
  }
  const data = allocData(dtype, n);
  for (let i = 0; i < n; i++) data[i] = values[i];
  return { dtype, dims: [...dims], data };
}

/** True for floating point element types. */
export function isFloatType(dtype: number): boolean {
  return dtype === DataType.FLOAT || dtype === DataType.DOUBLE || dtype === DataType.FLOAT16;
}

type TensorProtoLike = onnxProto.onnx.ITensorProto;

/** Decodes a `TensorProto` whose data is embedded (raw or typed fields). */
export function fromTensorProto(t: TensorProtoLike): HostTensor {
  const dims = (t.dims ?? []).map(toNum);
  const dtype = t.dataType ?? 0;
  const n = sizeOf(dims);
  if (t.dataLocation === 1) {
    throw new ModelIoError(`tensor "${t.name}" still points at external data; load it first`);
  }
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  if (raw) {
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const data = allocData(dtype, n);
    const width = bytesPer(dtype);
    if (raw.byteLength !== n * width) {
      throw new ModelIoError(
        `tensor "${t.name}" of shape [${dims}] needs ${n * width} bytes, found ${raw.byteLength}`,
      );
    }
    if (dtype === DataType.FLOAT) {
      (data as Float32Array).set(new Float32Array(Uint8Array.from(raw).buffer));
    } else {
      for (let i = 0; i < n; i++) {
        switch (dtype) {
          case DataType.DOUBLE:
            data[i] = dv.getFloat64(i * 8, true);
            break;
          case DataType.INT64:
            data[i] = Number(dv.getBigInt64(i * 8, true));
            break;
          case DataType.INT32:
            data[i] = dv.getInt32(i * 4, true);
            break;
          case DataType.INT8:
            data[i] = dv.getInt8(i);
            break;
          default:
            data[i] = dv.getUint8(i);
        }
      }
    }
    return { dtype, dims, data };
  }
  let values: ArrayLike<number> = [];
  if (dtype === DataType.FLOAT) values = t.floatData ?? [];
  else if (dtype === DataType.DOUBLE) values = t.doubleData ?? [];
  else if (dtype === DataType.INT64) values = (t.int64Data ?? []).map(toNum);
  else values = t.int32Data ?? [];
  if (values.length === 0 && n > 0) {
    throw new ModelIoError(`tensor "${t.name}" of shape [${dims}] holds no data`);
  }
  return makeTensor(dtype, dims, values);
}

function bytesPer(dtype: number): number {
  switch (dtype) {
    case DataType.DOUBLE:
    case DataType.INT64:
      return 8;
    case DataType.FLOAT:
    case DataType.INT32:
      return 4;
    case DataType.FLOAT16:
      return 2;
    default:
      return 1;
  }
}

/** Encodes a host tensor as a `TensorProto` with raw little-endian data. */
export function toTensorProto(name: string, t: HostTensor): InstanceType<typeof onnx.TensorProto> {
  const n = sizeOf(t.dims);
  let raw: Uint8Array;
  if (t.dtype === DataType.FLOAT && t.data instanceof Float32Array) {
    raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  } else {
    const width = bytesPer(t.dtype);
    raw = new Uint8Array(n * width);
    const dv = new DataView(raw.buffer);
    for (let i = 0; i < n; i++) {
      const v = t.data[i];
      switch (t.dtype) {
        case DataType.FLOAT:
          dv.setFloat32(i * 4, v, true);
          break;
        case DataType.DOUBLE:
          dv.setFloat64(i * 8, v, true);
          break;
        case DataType.INT64: {
          // Exporters use ±2^63-1 as "to the end"; doubles round it past the int64 range.
          const big = v >= 9.2e18
            ? 9223372036854775807n
            : v <= -9.2e18
            ? -9223372036854775807n
            : BigInt(Math.round(v));
          dv.setBigInt64(i * 8, big, true);
          break;
        }
        case DataType.INT32:
          dv.setInt32(i * 4, v, true);
          break;
        case DataType.INT8:
          dv.setInt8(i, v);
          break;
        default:
          dv.setUint8(i, v);
      }
    }
  }
  return onnx.TensorProto.create({ name, dims: t.dims, dataType: t.dtype, rawData: raw });
}

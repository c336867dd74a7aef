/**
 * float16 models: converting values between float16 and float32, and rewriting a float16 model
 * as float32 (the upcast a provider without float16 kernels needs, and the form the
 * loss-and-gradient graph is built in).
 *
 * @module
 */
import onnxProto from "onnx-proto";
import type { ModelProto } from "../onnx/graph.ts";
import { toNum } from "../onnx/tensor.ts";

const { onnx } = onnxProto;
const FLOAT = 1;
const FLOAT16 = 10;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The float16 bit pattern nearest to `value` (round to nearest even; overflow to ±Infinity).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(floatToHalf(1), 0x3c00);
 * assert.equal(floatToHalf(1e6), 0x7c00); // beyond float16's 65504: Infinity
 * ```
 */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rest > mid || (rest === mid && (half & 1)) ? 1 : 0));
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half++;
  e = half >>> 10;
  return sign | (e >= 0x1f ? 0x7c00 : half);
}

/**
 * The value of a float16 bit pattern.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(halfToFloat(0x3c00), 1);
 * ```
 */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * float32 values as float16 bit patterns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual([...toHalves(new Float32Array([0.5, -2]))], [0x3800, 0xc000]);
 * ```
 */
export function toHalves(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]);
  return out;
}

/**
 * float16 bit patterns as float32 values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual([...fromHalves(new Uint16Array([0x3800, 0xc000]))], [0.5, -2]);
 * ```
 */
export function fromHalves(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = halfToFloat(halves[i]);
  return out;
}

type TensorProto = onnxProto.onnx.ITensorProto;

function upcastTensor(t: TensorProto): void {
  if (t.dataType !== FLOAT16) return;
  const n = (t.dims ?? []).map(toNum).reduce((a, b) => a * b, 1);
  const halves = new Uint16Array(n);
  if (t.rawData && t.rawData.length > 0) {
    const dv = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
    for (let i = 0; i < n; i++) halves[i] = dv.getUint16(i * 2, true);
  } else {
    // Without raw data, float16 values sit in int32_data, one bit pattern each.
    const ints = t.int32Data ?? [];
    for (let i = 0; i < n; i++) halves[i] = ints[i] ?? 0;
  }
  const values = fromHalves(halves);
  t.dataType = FLOAT;
  t.rawData = new Uint8Array(values.buffer);
  t.int32Data = [];
}

function upcastValueInfo(v: onnxProto.onnx.IValueInfoProto): void {
  const tensor = v.type?.tensorType;
  if (tensor && tensor.elemType === FLOAT16) tensor.elemType = FLOAT;
}

/**
 * Whether any graph input or output of a model is float16.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * const b = new GraphBuilder();
 * b.output(b.node("Relu", [b.input("x", 1, [2])]), 1, [2]);
 * assert.equal(hasFloat16Interface(b.toModel()), false);
 * ```
 */
export function hasFloat16Interface(model: ModelProto): boolean {
  const g = model.graph;
  return [...(g?.input ?? []), ...(g?.output ?? [])].some((v) =>
    v.type?.tensorType?.elemType === FLOAT16
  );
}

/**
 * Rewrites a float16 model as float32 in place: initializers, constants, casts to float16,
 * and the declared types of inputs, outputs and intermediate values. Returns how many tensors
 * were converted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import onnxProto from "onnx-proto";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * import { DataType } from "../onnx/tensor.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", DataType.FLOAT16, [2]);
 * b.output(b.node("Mul", [x, "w"]), DataType.FLOAT16, [2]);
 * const model = b.toModel();
 * const halves = Uint16Array.of(0x3c00, 0x4000); // 1 and 2
 * model.graph!.initializer!.push(onnxProto.onnx.TensorProto.create({
 *   name: "w",
 *   dims: [2],
 *   dataType: DataType.FLOAT16,
 *   rawData: new Uint8Array(halves.buffer),
 * }));
 * assert.ok(hasFloat16Interface(model));
 * assert.equal(upcastModel(model), 1); // the one initializer
 * assert.ok(!hasFloat16Interface(model));
 * ```
 */
export function upcastModel(model: ModelProto): number {
  const g = model.graph;
  if (!g) return 0;
  let converted = 0;
  const visitGraph = (graph: onnxProto.onnx.IGraphProto) => {
    for (const t of graph.initializer ?? []) {
      if (t.dataType === FLOAT16) converted++;
      upcastTensor(t);
    }
    for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) {
      upcastValueInfo(v);
    }
    for (const n of graph.node ?? []) {
      for (const a of n.attribute ?? []) {
        if (a.t && a.t.dataType === FLOAT16) {
          upcastTensor(a.t);
          converted++;
        }
        for (const t of a.tensors ?? []) upcastTensor(t);
        if ((a.name === "to" || a.name === "dtype") && toNum(a.i) === FLOAT16) a.i = FLOAT;
        if (a.g) visitGraph(a.g);
        for (const sub of a.graphs ?? []) visitGraph(sub);
      }
    }
  };
  visitGraph(g);
  return converted;
}

/**
 * Serializes a model (after {@link upcastModel}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * import { decodeModel } from "../onnx/model_io.ts";
 * const b = new GraphBuilder();
 * b.output(b.node("Relu", [b.input("x", 1, [2])]), 1, [2]);
 * assert.equal(decodeModel(modelBytes(b.toModel())).graph?.node?.[0].opType, "Relu");
 * ```
 */
export function modelBytes(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

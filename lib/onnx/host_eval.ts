/**
 * Evaluation of nodes on the host, for constant folding: elementwise arithmetic with numpy
 * broadcasting, casts, and the shape plumbing (Shape, Gather, Concat, Slice, Reshape, Range,
 * reductions…) that exporters put in front of Reshape and Resize.
 *
 * @module
 */
import { attrInt, attrInts, type Node } from "./graph.ts";
import {
  axesOf,
  broadcastShapes,
  normAxis,
  reshapeDims,
  sliceAxes,
  splitSizes,
} from "./op_params.ts";
import { inferNode, type ShapeContext } from "./shape_inference.ts";
import { allocData, DataType, type HostTensor, isFloatType, sizeOf } from "./tensor.ts";

function strides(dims: number[]): number[] {
  const s = Array(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

/** Offsets into `dims` (broadcast to `out`) for every flat index of `out`. */
function broadcastIndex(dims: number[], out: number[]): Int32Array {
  const n = sizeOf(out);
  const idx = new Int32Array(n);
  const pad = out.length - dims.length;
  const st = strides(dims);
  const ost = strides(out);
  for (let i = 0; i < n; i++) {
    let off = 0, rem = i;
    for (let a = 0; a < out.length; a++) {
      const c = Math.floor(rem / ost[a]);
      rem -= c * ost[a];
      const ia = a - pad;
      if (ia >= 0 && dims[ia] !== 1) off += c * st[ia];
    }
    idx[i] = off;
  }
  return idx;
}

function elementwise(
  inputs: HostTensor[],
  dtype: number,
  fn: (...v: number[]) => number,
  node: Node,
): HostTensor {
  const out = broadcastShapes(inputs.map((t) => t.dims), node);
  const n = sizeOf(out);
  const idx = inputs.map((t) => broadcastIndex(t.dims, out));
  const data = allocData(dtype, n);
  const args = new Array(inputs.length);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < inputs.length; k++) args[k] = inputs[k].data[idx[k][i]];
    data[i] = fn(...args);
  }
  return { dtype, dims: out, data };
}

function gatherAxis(t: HostTensor, axis: number, indices: number[], idxDims: number[]): HostTensor {
  const pre = sizeOf(t.dims.slice(0, axis));
  const d = t.dims[axis];
  const post = sizeOf(t.dims.slice(axis + 1));
  const out = [...t.dims.slice(0, axis), ...idxDims, ...t.dims.slice(axis + 1)];
  const data = allocData(t.dtype, sizeOf(out));
  let o = 0;
  for (let p = 0; p < pre; p++) {
    for (const raw of indices) {
      const j = raw < 0 ? raw + d : raw;
      for (let q = 0; q < post; q++) data[o++] = t.data[(p * d + j) * post + q];
    }
  }
  return { dtype: t.dtype, dims: out, data };
}

function transposeHost(t: HostTensor, perm: number[]): HostTensor {
  const out = perm.map((p) => t.dims[p]);
  const st = strides(t.dims);
  const ost = strides(out);
  const n = sizeOf(out);
  const data = allocData(t.dtype, n);
  for (let i = 0; i < n; i++) {
    let rem = i, off = 0;
    for (let a = 0; a < out.length; a++) {
      const c = Math.floor(rem / ost[a]);
      rem -= c * ost[a];
      off += c * st[perm[a]];
    }
    data[i] = t.data[off];
  }
  return { dtype: t.dtype, dims: out, data };
}

/**
 * A tensor of shape `dims` whose element at coordinates (c₀, c₁, …) is `a`'s element at
 * (source(0, c₀), source(1, c₁), …).
 */
function remap(
  a: HostTensor,
  dims: number[],
  source: (axis: number, c: number) => number,
): HostTensor {
  const st = strides(a.dims);
  const ost = strides(dims);
  const data = allocData(a.dtype, sizeOf(dims));
  for (let i = 0; i < data.length; i++) {
    let rem = i, off = 0;
    for (let k = 0; k < dims.length; k++) {
      const c = Math.floor(rem / ost[k]);
      rem -= c * ost[k];
      off += source(k, c) * st[k];
    }
    data[i] = a.data[off];
  }
  return { dtype: a.dtype, dims, data };
}

function castValue(v: number, to: number): number {
  if (isFloatType(to)) return v;
  if (to === DataType.BOOL) return v !== 0 ? 1 : 0;
  return Math.trunc(v);
}

/** Computes a node's outputs from its constant inputs. */
export type Evaluator = (ctx: ShapeContext, node: Node, inputs: HostTensor[]) => HostTensor[];

const intDiv = (a: number, b: number) => Math.trunc(a / b);

function binary(fn: (a: number, b: number) => number, bool = false): Evaluator {
  return (_ctx, n, [a, b]) => {
    const dtype = bool ? DataType.BOOL : a.dtype;
    const f = !bool && !isFloatType(a.dtype) && fn === div ? intDiv : fn;
    return [elementwise([a, b], dtype, (x, y) => (bool ? Number(f(x, y)) : f(x, y)), n)];
  };
}
const div = (a: number, b: number) => a / b;
function unary(fn: (a: number) => number): Evaluator {
  return (_ctx, n, [a]) => [elementwise([a], a.dtype, fn, n)];
}

/**
 * Op type → evaluator, for the ops folding computes on the host: the arithmetic and shape
 * plumbing exporters leave around shapes (Shape → Gather → Concat → Reshape chains), not the
 * heavy ops.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DataType } from "./tensor.ts";
 * const add = { opType: "Add", name: "a", domain: "", inputs: ["x", "y"], outputs: ["z"], attrs: {} };
 * const ctx = { shape: () => [2], dtype: () => DataType.INT64, value: () => undefined, opset: 17 };
 * const two = { dtype: DataType.INT64, dims: [2], data: Float64Array.of(1, 2) };
 * const [sum] = HOST_EVALUATORS.Add(ctx, add, [two, two]);
 * assert.deepEqual([...sum.data], [2, 4]);
 * ```
 */
export const HOST_EVALUATORS: Readonly<Record<string, Evaluator>> = {
  Identity: (_c, _n, [a]) => [a],
  Add: binary((a, b) => a + b),
  Sub: binary((a, b) => a - b),
  Mul: binary((a, b) => a * b),
  Div: binary(div),
  Pow: binary((a, b) => Math.pow(a, b)),
  Mod: binary((a, b) => a - Math.floor(a / b) * b),
  Max: binary(Math.max),
  Min: binary(Math.min),
  Equal: binary((a, b) => Number(a === b), true),
  Less: binary((a, b) => Number(a < b), true),
  Greater: binary((a, b) => Number(a > b), true),
  LessOrEqual: binary((a, b) => Number(a <= b), true),
  GreaterOrEqual: binary((a, b) => Number(a >= b), true),
  And: binary((a, b) => Number(a && b), true),
  Or: binary((a, b) => Number(a || b), true),
  Not: (_c, n, [a]) => [elementwise([a], DataType.BOOL, (x) => Number(!x), n)],
  Neg: unary((a) => -a),
  Abs: unary(Math.abs),
  Sqrt: unary(Math.sqrt),
  Exp: unary(Math.exp),
  Log: unary(Math.log),
  Floor: unary(Math.floor),
  Ceil: unary(Math.ceil),
  Reciprocal: unary((a) => 1 / a),
  Sign: unary(Math.sign),
  Where: (_c, n, [c, a, b]) => [elementwise([c, a, b], a.dtype, (x, y, z) => (x ? y : z), n)],
  Cast: (_c, n, [a]) => {
    const to = attrInt(n, "to", 0);
    return [elementwise([a], to, (x) => castValue(x, to), n)];
  },
  CastLike: (_c, n, [a, b]) => [elementwise([a], b.dtype, (x) => castValue(x, b.dtype), n)],
  Reshape: (ctx, n, [a]) => {
    const shape = ctx.opset < 5
      ? attrInts(n, "shape", [])!
      : Array.from(ctx.value(n.inputs[1])!.data);
    return [{ ...a, dims: reshapeDims(n, a.dims, shape, attrInt(n, "allowzero", 0)) }];
  },
  Flatten: (ctx, n, [a]) => {
    const t = inferNode(ctx, n)[0];
    return [{ ...a, dims: t.dims }];
  },
  Squeeze: (ctx, n, [a]) => [{ ...a, dims: inferNode(ctx, n)[0].dims }],
  Unsqueeze: (ctx, n, [a]) => [{ ...a, dims: inferNode(ctx, n)[0].dims }],
  Concat: (_c, n, inputs) => {
    const parts = inputs.filter((t) => t !== undefined);
    const axis = normAxis(attrInt(n, "axis", 0), parts[0].dims.length, n);
    const dims = [...parts[0].dims];
    dims[axis] = parts.reduce((s, t) => s + t.dims[axis], 0);
    const pre = sizeOf(dims.slice(0, axis));
    const data = allocData(parts[0].dtype, sizeOf(dims));
    let o = 0;
    for (let p = 0; p < pre; p++) {
      for (const t of parts) {
        const block = sizeOf(t.dims.slice(axis));
        for (let q = 0; q < block; q++) data[o++] = t.data[p * block + q];
      }
    }
    return [{ dtype: parts[0].dtype, dims, data }];
  },
  Gather: (_c, n, [a, idx]) => {
    const axis = normAxis(attrInt(n, "axis", 0), a.dims.length, n);
    return [gatherAxis(a, axis, Array.from(idx.data), idx.dims)];
  },
  Shape: (ctx, n) => {
    const out = inferNode(ctx, n)[0];
    const dims = ctx.shape(n.inputs[0]);
    const r = dims.length;
    let start = attrInt(n, "start", 0);
    if (start < 0) start += r;
    start = Math.max(0, start);
    return [{
      dtype: DataType.INT64,
      dims: out.dims,
      data: Float64Array.from(dims.slice(start, start + out.dims[0])),
    }];
  },
  Size: (ctx, n) => [{
    dtype: DataType.INT64,
    dims: [],
    data: Float64Array.of(sizeOf(ctx.shape(n.inputs[0]))),
  }],
  ConstantOfShape: (ctx, n) => {
    const t = inferNode(ctx, n)[0];
    const v = n.attrs.value;
    const data = allocData(t.dtype, sizeOf(t.dims));
    if (v && v.type === "tensor") data.fill(v.value.data[0]);
    return [{ dtype: t.dtype, dims: t.dims, data }];
  },
  Expand: (ctx, n, [a]) => {
    const dims = inferNode(ctx, n)[0].dims;
    const zero: HostTensor = { dtype: a.dtype, dims, data: allocData(a.dtype, 1) };
    zero.dims = dims.map(() => 1);
    const full = elementwise([a, { ...zero, dims }], a.dtype, (x) => x, n);
    return [full];
  },
  Tile: (ctx, n, [a]) => [remap(a, inferNode(ctx, n)[0].dims, (k, c) => c % a.dims[k])],
  Slice: (ctx, n, [a]) => {
    const dims = [...a.dims];
    const start = a.dims.map(() => 0);
    const step = a.dims.map(() => 1);
    for (const s of sliceAxes(ctx, n, a.dims)) {
      dims[s.axis] = s.count;
      start[s.axis] = s.start;
      step[s.axis] = s.step;
    }
    return [remap(a, dims, (k, c) => start[k] + c * step[k])];
  },
  Split: (ctx, n, [a]) => {
    const axis = normAxis(attrInt(n, "axis", 0), a.dims.length, n);
    let offset = 0;
    return splitSizes(ctx, n, a.dims).map((s) => {
      const idx = Array.from({ length: s }, (_, i) => offset + i);
      offset += s;
      return gatherAxis(a, axis, idx, [s]);
    });
  },
  Transpose: (_c, n, [a]) => {
    const perm = attrInts(n, "perm", undefined) ?? a.dims.map((_, i) => a.dims.length - 1 - i);
    return [transposeHost(a, perm)];
  },
  Range: (_c, _n, [s, l, d]) => {
    const start = s.data[0], limit = l.data[0], delta = d.data[0];
    const count = Math.max(0, Math.ceil((limit - start) / delta));
    const data = allocData(s.dtype, count);
    for (let i = 0; i < count; i++) data[i] = start + i * delta;
    return [{ dtype: s.dtype, dims: [count], data }];
  },
  ReduceProd: reduceEval((acc, v) => acc * v, 1),
  ReduceSum: reduceEval((acc, v) => acc + v, 0),
  ReduceMax: reduceEval(Math.max, -Infinity),
  ReduceMin: reduceEval(Math.min, Infinity),
};

function reduceEval(fn: (acc: number, v: number) => number, init: number): Evaluator {
  return (ctx, n, [a]) => {
    const t = inferNode(ctx, n)[0];
    const axesAsInput = n.opType === "ReduceSum" ? 13 : 18;
    let axes = axesOf(ctx, n, ctx.opset >= axesAsInput ? 1 : 99);
    if (!axes || axes.length === 0) axes = a.dims.map((_, i) => i);
    const set = new Set(axes.map((x) => normAxis(x, a.dims.length, n)));
    const keptDims = a.dims.map((d, i) => (set.has(i) ? 1 : d));
    const data = allocData(a.dtype, sizeOf(keptDims)).fill(init);
    const st = strides(a.dims);
    const kst = strides(keptDims);
    for (let i = 0; i < a.data.length; i++) {
      let rem = i, off = 0;
      for (let k = 0; k < a.dims.length; k++) {
        const c = Math.floor(rem / st[k]);
        rem -= c * st[k];
        if (!set.has(k)) off += c * kst[k];
      }
      data[off] = fn(data[off], a.data[i]);
    }
    return [{ dtype: a.dtype, dims: t.dims, data }];
  };
}

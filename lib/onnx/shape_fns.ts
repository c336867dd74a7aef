/**
 * The shape function of every op shape inference knows: from a node's input shapes (and the
 * constant inputs an op needs) to the shape and element type of each of its outputs.
 *
 * @module
 */
import { ShapeError } from "./errors.ts";
import { attrInt, attrInts, describeNode, type Node } from "./graph.ts";
import {
  axesOf,
  broadcastShapes,
  constantNodeValue,
  constInts,
  normAxis,
  padsOf,
  reshapeDims,
  resizeParams,
  sliceAxes,
  splitSizes,
} from "./op_params.ts";
import type { ShapeContext, ValueType } from "./shape_inference.ts";
import { DataType, sizeOf } from "./tensor.ts";
import { convTransposeGeometry, windowGeometry } from "./window_geometry.ts";

/** The output types of a node from what is known of its inputs. */
export type ShapeFn = (ctx: ShapeContext, node: Node) => ValueType[];

const same: ShapeFn = (ctx, n) => [{ dims: ctx.shape(n.inputs[0]), dtype: ctx.dtype(n.inputs[0]) }];
const broadcast = (dtypeFrom: number | "bool"): ShapeFn => (ctx, n) => [{
  dims: broadcastShapes(n.inputs.filter((i) => i !== "").map((i) => ctx.shape(i)), n),
  dtype: dtypeFrom === "bool" ? DataType.BOOL : ctx.dtype(n.inputs[dtypeFrom]),
}];

function reduceShape(ctx: ShapeContext, n: Node, axesInput: number): ValueType[] {
  const dims = ctx.shape(n.inputs[0]);
  const keep = attrInt(n, "keepdims", 1) === 1;
  let axes = axesOf(ctx, n, axesInput);
  if (!axes || axes.length === 0) {
    axes = attrInt(n, "noop_with_empty_axes", 0) ? [] : dims.map((_, i) => i);
  }
  const set = new Set(axes.map((a) => normAxis(a, dims.length, n)));
  const out: number[] = [];
  dims.forEach((d, i) => {
    if (set.has(i)) {
      if (keep) out.push(1);
    } else out.push(d);
  });
  return [{ dims: out, dtype: ctx.dtype(n.inputs[0]) }];
}

/**
 * Op type → shape function, for the default ONNX domain.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const relu = { opType: "Relu", name: "r", domain: "", inputs: ["x"], outputs: ["y"], attrs: {} };
 * const ctx = { shape: () => [2, 3], dtype: () => 1, value: () => undefined, opset: 17 };
 * assert.deepEqual(SHAPE_FNS.Relu(ctx, relu), [{ dims: [2, 3], dtype: 1 }]);
 * ```
 */
export const SHAPE_FNS: Record<string, ShapeFn> = {};
for (
  const op of [
    "Sigmoid",
    "Relu",
    "LeakyRelu",
    "Tanh",
    "Erf",
    "Exp",
    "Log",
    "Sqrt",
    "Neg",
    "Abs",
    "Identity",
    "Reciprocal",
    "Softmax",
    "LogSoftmax",
    "Clip",
    "Sign",
    "Floor",
    "Ceil",
    "Round",
    "Softplus",
    "Elu",
    "HardSigmoid",
    "Sin",
    "Cos",
    "InstanceNormalization",
    "Gelu",
  ]
) SHAPE_FNS[op] = same;
for (const op of ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mod", "PRelu"]) {
  SHAPE_FNS[op] = broadcast(0);
}
for (
  const op of ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"]
) {
  SHAPE_FNS[op] = broadcast("bool");
}
SHAPE_FNS.ScatterElements = (ctx, n) => [{
  dims: ctx.shape(n.inputs[0]),
  dtype: ctx.dtype(n.inputs[0]),
}];
SHAPE_FNS.ScatterND = SHAPE_FNS.ScatterElements;
SHAPE_FNS.Not = (ctx, n) => [{ dims: ctx.shape(n.inputs[0]), dtype: DataType.BOOL }];
SHAPE_FNS.Where = (ctx, n) => [{
  dims: broadcastShapes(n.inputs.map((i) => ctx.shape(i)), n),
  dtype: ctx.dtype(n.inputs[1]),
}];
SHAPE_FNS.Cast = (ctx, n) => [{ dims: ctx.shape(n.inputs[0]), dtype: attrInt(n, "to", 0) }];
SHAPE_FNS.CastLike = (ctx, n) => [{ dims: ctx.shape(n.inputs[0]), dtype: ctx.dtype(n.inputs[1]) }];
SHAPE_FNS.Dropout = (ctx, n) => {
  const t = { dims: ctx.shape(n.inputs[0]), dtype: ctx.dtype(n.inputs[0]) };
  return n.outputs.length > 1 ? [t, { dims: t.dims, dtype: DataType.BOOL }] : [t];
};
SHAPE_FNS.BatchNormalization = same;
SHAPE_FNS.LayerNormalization = (ctx, n) => {
  const dims = ctx.shape(n.inputs[0]);
  const axis = normAxis(attrInt(n, "axis", -1), dims.length, n);
  const stat = dims.map((d, i) => (i < axis ? d : 1));
  const stashType = attrInt(n, "stash_type", 1);
  return [
    { dims, dtype: ctx.dtype(n.inputs[0]) },
    { dims: stat, dtype: stashType },
    { dims: stat, dtype: stashType },
  ].slice(0, n.outputs.length);
};
SHAPE_FNS.Conv = (ctx, n) => {
  const x = ctx.shape(n.inputs[0]);
  const w = ctx.shape(n.inputs[1]);
  const kernel = attrInts(n, "kernel_shape", undefined) ?? w.slice(2);
  const g = windowGeometry(n, x.slice(2), kernel);
  const group = attrInt(n, "group", 1);
  if (x[1] !== w[1] * group) {
    throw new ShapeError(
      `${describeNode(n)}: input has ${x[1]} channels, weight expects ${
        w[1] * group
      } (group ${group})`,
    );
  }
  return [{ dims: [x[0], w[0], ...g.out], dtype: ctx.dtype(n.inputs[0]) }];
};
SHAPE_FNS.ConvTranspose = (ctx, n) => {
  const x = ctx.shape(n.inputs[0]);
  const w = ctx.shape(n.inputs[1]);
  const kernel = attrInts(n, "kernel_shape", undefined) ?? w.slice(2);
  const g = convTransposeGeometry(n, x.slice(2), kernel);
  const group = attrInt(n, "group", 1);
  return [{ dims: [x[0], w[1] * group, ...g.out], dtype: ctx.dtype(n.inputs[0]) }];
};
const pool: ShapeFn = (ctx, n) => {
  const x = ctx.shape(n.inputs[0]);
  const g = windowGeometry(n, x.slice(2), attrInts(n, "kernel_shape", [])!);
  const out = [{ dims: [x[0], x[1], ...g.out], dtype: ctx.dtype(n.inputs[0]) }];
  if (n.outputs.length > 1) out.push({ dims: out[0].dims, dtype: DataType.INT64 });
  return out;
};
SHAPE_FNS.MaxPool = pool;
SHAPE_FNS.AveragePool = pool;
SHAPE_FNS.GlobalAveragePool = (ctx, n) => {
  const x = ctx.shape(n.inputs[0]);
  return [{ dims: x.map((d, i) => (i < 2 ? d : 1)), dtype: ctx.dtype(n.inputs[0]) }];
};
SHAPE_FNS.GlobalMaxPool = SHAPE_FNS.GlobalAveragePool;
SHAPE_FNS.MatMul = (ctx, n) => {
  let a = ctx.shape(n.inputs[0]);
  let b = ctx.shape(n.inputs[1]);
  const a1 = a.length === 1, b1 = b.length === 1;
  if (a1) a = [1, a[0]];
  if (b1) b = [b[0], 1];
  if (a[a.length - 1] !== b[b.length - 2]) {
    throw new ShapeError(`${describeNode(n)}: cannot multiply [${a}] by [${b}]`);
  }
  const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)], n);
  const out = [...batch];
  if (!a1) out.push(a[a.length - 2]);
  if (!b1) out.push(b[b.length - 1]);
  return [{ dims: out, dtype: ctx.dtype(n.inputs[0]) }];
};
SHAPE_FNS.Gemm = (ctx, n) => {
  const a = ctx.shape(n.inputs[0]);
  const b = ctx.shape(n.inputs[1]);
  const m = attrInt(n, "transA", 0) ? a[1] : a[0];
  const k = attrInt(n, "transB", 0) ? b[0] : b[1];
  return [{ dims: [m, k], dtype: ctx.dtype(n.inputs[0]) }];
};
SHAPE_FNS.Reshape = (ctx, n) => {
  const dims = ctx.shape(n.inputs[0]);
  const shape = ctx.opset < 5 ? attrInts(n, "shape", [])! : constInts(ctx, n, 1, "shape");
  return [{
    dims: reshapeDims(n, dims, shape, attrInt(n, "allowzero", 0)),
    dtype: ctx.dtype(n.inputs[0]),
  }];
};
SHAPE_FNS.Flatten = (ctx, n) => {
  const dims = ctx.shape(n.inputs[0]);
  let axis = attrInt(n, "axis", 1);
  if (axis < 0) axis += dims.length;
  return [{
    dims: [sizeOf(dims.slice(0, axis)), sizeOf(dims.slice(axis))],
    dtype: ctx.dtype(n.inputs[0]),
  }];
};
SHAPE_FNS.Transpose = (ctx, n) => {
  const dims = ctx.shape(n.inputs[0]);
  const perm = attrInts(n, "perm", undefined) ?? dims.map((_, i) => dims.length - 1 - i);
  return [{ dims: perm.map((p) => dims[p]), dtype: ctx.dtype(n.inputs[0]) }];
};
SHAPE_FNS.Squeeze = (ctx, n) => {
  const dims = ctx.shape(n.inputs[0]);
  const axes = axesOf(ctx, n, 1)?.map((a) => normAxis(a, dims.length, n));
  for (const a of axes ?? []) {
    if (dims[a] !== 1) {
      throw new ShapeError(`${describeNode(n)}: cannot squeeze axis ${a} of size ${dims[a]}`);
    }
  }
  const out = dims.filter((d, i) => (axes ? !axes.includes(i) : d !== 1));
  return [{ dims: out, dtype: ctx.dtype(n.inputs[0]) }];
};
SHAPE_FNS.Unsqueeze = (ctx, n) => {
  const dims = ctx.shape(n.inputs[0]);
  const axes = axesOf(ctx, n, 1) ?? [];
  const rank = dims.length + axes.length;
  const set = new Set(axes.map((a) => normAxis(a, rank, n)));
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(set.has(i) ? 1 : dims[j++]);
  return [{ dims: out, dtype: ctx.dtype(n.inputs[0]) }];
};
SHAPE_FNS.Concat = (ctx, n) => {
  const shapes = n.inputs.filter((i) => i !== "").map((i) => ctx.shape(i));
  const axis = normAxis(attrInt(n, "axis", 0), shapes[0].length, n);
  const out = [...shapes[0]];
  out[axis] = shapes.reduce((a, s) => a + s[axis], 0);
  return [{ dims: out, dtype: ctx.dtype(n.inputs[0]) }];
};
SHAPE_FNS.Split = (ctx, n) => {
  const dims = ctx.shape(n.inputs[0]);
  const axis = normAxis(attrInt(n, "axis", 0), dims.length, n);
  return splitSizes(ctx, n, dims).map((s) => {
    const d = [...dims];
    d[axis] = s;
    return { dims: d, dtype: ctx.dtype(n.inputs[0]) };
  });
};
SHAPE_FNS.Slice = (ctx, n) => {
  const dims = [...ctx.shape(n.inputs[0])];
  for (const s of sliceAxes(ctx, n, dims)) dims[s.axis] = s.count;
  return [{ dims, dtype: ctx.dtype(n.inputs[0]) }];
};
SHAPE_FNS.Pad = (ctx, n) => {
  const dims = ctx.shape(n.inputs[0]);
  const pads = padsOf(ctx, n, dims.length);
  return [{
    dims: dims.map((d, i) => d + pads[i] + pads[i + dims.length]),
    dtype: ctx.dtype(n.inputs[0]),
  }];
};
SHAPE_FNS.Gather = (ctx, n) => {
  const dims = ctx.shape(n.inputs[0]);
  const idx = ctx.shape(n.inputs[1]);
  const axis = normAxis(attrInt(n, "axis", 0), dims.length, n);
  return [{
    dims: [...dims.slice(0, axis), ...idx, ...dims.slice(axis + 1)],
    dtype: ctx.dtype(n.inputs[0]),
  }];
};
SHAPE_FNS.Expand = (ctx, n) => {
  const shape = constInts(ctx, n, 1, "shape");
  return [{
    dims: broadcastShapes([ctx.shape(n.inputs[0]), shape], n),
    dtype: ctx.dtype(n.inputs[0]),
  }];
};
SHAPE_FNS.Tile = (ctx, n) => {
  const reps = constInts(ctx, n, 1, "repeats");
  return [{
    dims: ctx.shape(n.inputs[0]).map((d, i) => d * reps[i]),
    dtype: ctx.dtype(n.inputs[0]),
  }];
};
SHAPE_FNS.Resize = (ctx, n) => [{
  dims: resizeParams(ctx, n, ctx.shape(n.inputs[0])).out,
  dtype: ctx.dtype(n.inputs[0]),
}];
SHAPE_FNS.Upsample = SHAPE_FNS.Resize;
for (
  const op of [
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL2",
    "ReduceSumSquare",
  ]
) {
  SHAPE_FNS[op] = (ctx, n) => {
    const axesAsInput = op === "ReduceSum" ? 13 : 18;
    return reduceShape(ctx, n, ctx.opset >= axesAsInput ? 1 : 99);
  };
}
SHAPE_FNS.Shape = (ctx, n) => {
  const r = ctx.shape(n.inputs[0]).length;
  let start = attrInt(n, "start", 0), end = attrInt(n, "end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  return [{ dims: [Math.max(0, Math.min(end, r) - Math.max(start, 0))], dtype: DataType.INT64 }];
};
SHAPE_FNS.Size = () => [{ dims: [], dtype: DataType.INT64 }];
SHAPE_FNS.ConstantOfShape = (ctx, n) => {
  const v = n.attrs.value;
  return [{
    dims: constInts(ctx, n, 0, "shape"),
    dtype: v && v.type === "tensor" ? v.value.dtype : DataType.FLOAT,
  }];
};
SHAPE_FNS.Range = (ctx, n) => {
  const [s] = constInts(ctx, n, 0, "start");
  const [l] = constInts(ctx, n, 1, "limit");
  const [d] = constInts(ctx, n, 2, "delta");
  return [{ dims: [Math.max(0, Math.ceil((l - s) / d))], dtype: ctx.dtype(n.inputs[0]) }];
};
SHAPE_FNS.Constant = (_ctx, n) => {
  const t = constantNodeValue(n);
  return [{ dims: t.dims, dtype: t.dtype }];
};

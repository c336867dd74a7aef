/**
 * Static shape inference: one function per op type computing the output shapes (and element
 * types) of a node from its input shapes and, where an op needs them, constant input values.
 *
 * @module
 */
import { ShapeError, UnsupportedOpError } from "./errors.ts";
import {
  attrFloat,
  attrInt,
  attrInts,
  attrString,
  describeNode,
  type Graph,
  type Node,
} from "./graph.ts";
import { DataType, type HostTensor, sizeOf } from "./tensor.ts";

/** What a shape function may ask about a node's inputs. */
export interface ShapeContext {
  /** Shape of an input value (throws if unknown). */
  shape(name: string): number[];
  /** Element type of an input value. */
  dtype(name: string): number;
  /** Constant value of an input, when it is an initializer or folded constant. */
  value(name: string): HostTensor | undefined;
  /** Default-domain opset of the graph. */
  opset: number;
}

/** Inferred shape and element type of one value. */
export interface ValueType {
  dims: number[];
  dtype: number;
}

/** Shapes and element types of every value in a graph, by name. */
export type ShapeMap = Map<string, ValueType>;

/** Normalizes a possibly negative axis for a tensor of the given rank. */
export function normAxis(axis: number, rank: number, node?: Node): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    throw new ShapeError(
      `${node ? describeNode(node) + ": " : ""}axis ${axis} out of range for rank ${rank}`,
    );
  }
  return a;
}

/** Numpy-style broadcast of shapes; throws naming the node when they are incompatible. */
export function broadcastShapes(shapes: number[][], node?: Node): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v === 1) continue;
      if (d !== 1 && d !== v) {
        throw new ShapeError(
          `${node ? describeNode(node) + ": " : ""}shapes ${
            shapes.map((s) => `[${s}]`).join(" and ")
          } cannot be broadcast`,
        );
      }
      d = v;
    }
    out.push(d);
  }
  return out;
}

/** Resolved geometry of a convolution or pooling window over the spatial dims. */
export interface WindowGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** [begin..., end...] as in ONNX `pads`. */
  pads: number[];
  /** Output spatial dims. */
  out: number[];
}

/** Resolves kernel, strides, dilations, pads (incl. auto_pad) and output dims of a window op. */
export function windowGeometry(node: Node, spatialIn: number[], kernel: number[]): WindowGeometry {
  const r = spatialIn.length;
  const strides = attrInts(node, "strides", undefined) ?? Array(r).fill(1);
  const dilations = attrInts(node, "dilations", undefined) ?? Array(r).fill(1);
  let pads = attrInts(node, "pads", undefined) ?? Array(2 * r).fill(0);
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  const ceil = attrInt(node, "ceil_mode", 0) === 1;
  const out: number[] = [];
  if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    pads = Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const o = Math.ceil(spatialIn[i] / strides[i]);
      const keff = (kernel[i] - 1) * dilations[i] + 1;
      const total = Math.max(0, (o - 1) * strides[i] + keff - spatialIn[i]);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === "SAME_UPPER" ? small : total - small;
      pads[i + r] = total - pads[i];
      out.push(o);
    }
  } else {
    if (autoPad === "VALID") pads = Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const keff = (kernel[i] - 1) * dilations[i] + 1;
      const span = spatialIn[i] + pads[i] + pads[i + r] - keff;
      let o = (ceil ? Math.ceil(span / strides[i]) : Math.floor(span / strides[i])) + 1;
      // A ceil-mode window must start inside the input or the leading padding.
      if (ceil && (o - 1) * strides[i] >= spatialIn[i] + pads[i]) o--;
      if (o < 1) {
        throw new ShapeError(
          `${describeNode(node)}: window of ${keff} does not fit input of ${
            spatialIn[i]
          } with pads`,
        );
      }
      out.push(o);
    }
  }
  return { kernel, strides, dilations, pads, out };
}

/** Resolved ConvTranspose geometry: pads and output dims. */
export function convTransposeGeometry(
  node: Node,
  spatialIn: number[],
  kernel: number[],
): WindowGeometry & { outputPadding: number[] } {
  const r = spatialIn.length;
  const strides = attrInts(node, "strides", undefined) ?? Array(r).fill(1);
  const dilations = attrInts(node, "dilations", undefined) ?? Array(r).fill(1);
  const outputPadding = attrInts(node, "output_padding", undefined) ?? Array(r).fill(0);
  const outputShape = attrInts(node, "output_shape", undefined);
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  let pads = attrInts(node, "pads", undefined) ?? Array(2 * r).fill(0);
  const out: number[] = [];
  const spatialOut = outputShape ? outputShape.slice(-r) : undefined;
  if (spatialOut || autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    pads = Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const keff = (kernel[i] - 1) * dilations[i] + 1;
      const o = spatialOut ? spatialOut[i] : spatialIn[i] * strides[i];
      const total = strides[i] * (spatialIn[i] - 1) + outputPadding[i] + keff - o;
      const half = Math.floor(total / 2);
      // Matches the spec: SAME_UPPER puts the extra pad at the beginning for ConvTranspose.
      pads[i] = autoPad === "SAME_UPPER" ? total - half : half;
      pads[i + r] = total - pads[i];
      out.push(o);
    }
  } else {
    if (autoPad === "VALID") pads = Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const keff = (kernel[i] - 1) * dilations[i] + 1;
      out.push(strides[i] * (spatialIn[i] - 1) + outputPadding[i] + keff - pads[i] - pads[i + r]);
    }
  }
  return { kernel, strides, dilations, pads, out, outputPadding };
}

/** Reads a constant int input (axes, shape, pads) or fails naming the node. */
export function constInts(ctx: ShapeContext, node: Node, index: number, what: string): number[] {
  const name = node.inputs[index];
  const v = name ? ctx.value(name) : undefined;
  if (!v) {
    throw new ShapeError(
      `${
        describeNode(node)
      }: input ${index} (${what}) must be constant after folding, found a computed value "${name}"`,
    );
  }
  return Array.from(v.data);
}

/** True when the optional input `index` is given (present and non-empty name). */
export function hasInput(node: Node, index: number): boolean {
  return node.inputs.length > index && node.inputs[index] !== "";
}

/** The axes of a Reduce* / Squeeze / Unsqueeze node (attribute or input, by opset). */
export function axesOf(ctx: ShapeContext, node: Node, inputIndex: number): number[] | undefined {
  const attr = attrInts(node, "axes", undefined);
  if (attr) return attr;
  if (hasInput(node, inputIndex)) return constInts(ctx, node, inputIndex, "axes");
  return undefined;
}

/** Slice parameters per axis, clamped, as in the ONNX spec. */
export interface SliceAxis {
  axis: number;
  start: number;
  step: number;
  count: number;
}

/** Resolves the starts/ends/axes/steps of a Slice node against the data shape. */
export function sliceAxes(ctx: ShapeContext, node: Node, dims: number[]): SliceAxis[] {
  let starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined;
  if (ctx.opset < 10) {
    starts = attrInts(node, "starts", [])!;
    ends = attrInts(node, "ends", [])!;
    axes = attrInts(node, "axes", undefined);
  } else {
    starts = constInts(ctx, node, 1, "starts");
    ends = constInts(ctx, node, 2, "ends");
    if (hasInput(node, 3)) axes = constInts(ctx, node, 3, "axes");
    if (hasInput(node, 4)) steps = constInts(ctx, node, 4, "steps");
  }
  axes ??= starts.map((_, i) => i);
  return axes.map((a, i) => {
    const axis = normAxis(a, dims.length, node);
    const d = dims[axis];
    const step = steps?.[i] ?? 1;
    if (step === 0) throw new ShapeError(`${describeNode(node)}: slice step 0`);
    let s = starts[i], e = ends[i];
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (step > 0) {
      s = Math.min(Math.max(s, 0), d);
      e = Math.min(Math.max(e, 0), d);
    } else {
      s = Math.min(Math.max(s, 0), d - 1);
      e = Math.min(Math.max(e, -1), d - 1);
    }
    const count = Math.max(0, Math.ceil((e - s) / step));
    return { axis, start: s, step, count };
  });
}

/** Resize parameters: output dims and per-axis scales (as used for coordinates). */
export function resizeParams(
  ctx: ShapeContext,
  node: Node,
  dims: number[],
): { out: number[]; scales: number[] } {
  const rank = dims.length;
  let axes = attrInts(node, "axes", undefined)?.map((a) => normAxis(a, rank, node));
  axes ??= dims.map((_, i) => i);
  const scalesIdx = node.opType === "Upsample" || ctx.opset < 11 ? 1 : 2;
  const sizesIdx = 3;
  const out = [...dims];
  const scales = dims.map(() => 1);
  if (hasInput(node, sizesIdx) && (ctx.value(node.inputs[sizesIdx])?.data.length ?? 1) > 0) {
    const sizes = constInts(ctx, node, sizesIdx, "sizes");
    const policy = attrString(node, "keep_aspect_ratio_policy", "stretch");
    if (policy !== "stretch") {
      throw new ShapeError(
        `${describeNode(node)}: keep_aspect_ratio_policy "${policy}" unsupported`,
      );
    }
    axes.forEach((a, i) => {
      out[a] = sizes[i];
      scales[a] = sizes[i] / dims[a];
    });
  } else {
    // Upsample before opset 9 holds its scales in a floats attribute.
    const legacy = node.attrs.scales;
    const s = node.opType === "Upsample" && ctx.opset < 9
      ? legacy?.type === "floats" ? legacy.value : []
      : constInts(ctx, node, scalesIdx, "scales");
    if (s.length !== axes.length) {
      throw new ShapeError(
        `${describeNode(node)}: expected ${axes.length} scales, found ${s.length}`,
      );
    }
    axes.forEach((a, i) => {
      scales[a] = s[i];
      out[a] = Math.floor(dims[a] * s[i]);
    });
  }
  return { out, scales };
}

type ShapeFn = (ctx: ShapeContext, node: Node) => ValueType[];

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

/** Output dims of a Reshape given data dims and the requested shape (0 / -1 resolved). */
export function reshapeDims(node: Node, dims: number[], shape: number[], allowzero = 0): number[] {
  const out = shape.map((s, i) => (s === 0 && !allowzero ? dims[i] : s));
  const total = sizeOf(dims);
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const known = out.reduce((a, b, i) => (i === neg ? a : a * b), 1);
    if (known === 0 || total % known !== 0) {
      throw new ShapeError(
        `${describeNode(node)}: cannot reshape [${dims}] (${total} elements) to [${shape}]`,
      );
    }
    out[neg] = total / known;
  }
  if (sizeOf(out) !== total) {
    throw new ShapeError(
      `${describeNode(node)}: cannot reshape [${dims}] (${total} elements) to [${shape}] (${
        sizeOf(out)
      } elements)`,
    );
  }
  return out;
}

const SHAPE_FNS: Record<string, ShapeFn> = {};
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
/** The sizes of a Split node's outputs along its axis. */
export function splitSizes(ctx: ShapeContext, n: Node, dims: number[]): number[] {
  const axis = normAxis(attrInt(n, "axis", 0), dims.length, n);
  let split = attrInts(n, "split", undefined);
  if (!split && hasInput(n, 1)) split = constInts(ctx, n, 1, "split");
  if (!split) {
    const k = n.outputs.length;
    const per = Math.ceil(dims[axis] / k);
    split = Array.from({ length: k }, (_, i) => Math.min(per, dims[axis] - per * i));
  }
  return split;
}
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
/** The pads of a Pad node, [begin..., end...] over all axes. */
export function padsOf(ctx: ShapeContext, n: Node, rank: number): number[] {
  if (ctx.opset < 11) return attrInts(n, "pads", [])!;
  const pads = constInts(ctx, n, 1, "pads");
  if (!hasInput(n, 3)) return pads;
  const axes = constInts(ctx, n, 3, "axes").map((a) => normAxis(a, rank, n));
  const full = Array(2 * rank).fill(0);
  axes.forEach((a, i) => {
    full[a] = pads[i];
    full[a + rank] = pads[i + axes.length];
  });
  return full;
}
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

/** The value of a Constant node (value, value_float(s), value_int(s)). */
export function constantNodeValue(n: Node): HostTensor {
  const a = Object.entries(n.attrs)[0];
  if (!a) throw new ShapeError(`${describeNode(n)}: no value attribute`);
  const [key, v] = a;
  if (key === "value" && v.type === "tensor") return v.value;
  if (key === "value_float") {
    return { dtype: DataType.FLOAT, dims: [], data: Float32Array.of(attrFloat(n, key, 0)) };
  }
  if (key === "value_int") {
    return { dtype: DataType.INT64, dims: [], data: Float64Array.of(attrInt(n, key, 0)) };
  }
  if (key === "value_floats" && v.type === "floats") {
    return { dtype: DataType.FLOAT, dims: [v.value.length], data: Float32Array.from(v.value) };
  }
  if (key === "value_ints" && v.type === "ints") {
    return { dtype: DataType.INT64, dims: [v.value.length], data: Float64Array.from(v.value) };
  }
  throw new ShapeError(`${describeNode(n)}: unsupported constant attribute "${key}"`);
}

/** Infers the output types of one node; throws {@link UnsupportedOpError} naming an unknown op. */
export function inferNode(ctx: ShapeContext, node: Node): ValueType[] {
  const fn = SHAPE_FNS[node.opType];
  if (!fn || (node.domain !== "" && node.domain !== "ai.onnx")) {
    throw new UnsupportedOpError(
      `op type "${node.opType}" at node "${node.name}" is not supported (no shape inference)${
        node.domain ? ` (domain ${node.domain})` : ""
      }`,
    );
  }
  return fn(ctx, node);
}

/**
 * Records the shape and element type of every value of a graph whose inputs have the given
 * concrete shapes. Values an op needs as constants (Reshape shapes, axes…) must be initializers,
 * i.e. the graph should be folded first.
 *
 * @example
 * ```ts
 * import type { Graph } from "./graph.ts";
 * declare const graph: Graph;
 * const shapes = inferShapes(graph, { latent: [1, 4, 8, 8] });
 * shapes.get("sample")?.dims; // [1, 3, 64, 64]
 * ```
 */
export function inferShapes(graph: Graph, inputShapes: Record<string, number[]>): ShapeMap {
  const map: ShapeMap = new Map();
  for (const v of graph.inputs) {
    const dims = inputShapes[v.name];
    if (!dims) throw new ShapeError(`no shape given for graph input "${v.name}"`);
    map.set(v.name, { dims, dtype: v.dtype });
  }
  for (const [k, t] of graph.initializers) map.set(k, { dims: t.dims, dtype: t.dtype });
  const ctx: ShapeContext = {
    shape: (name) => {
      const t = map.get(name);
      if (!t) throw new ShapeError(`value "${name}" has no known shape`);
      return t.dims;
    },
    dtype: (name) => map.get(name)?.dtype ?? 0,
    value: (name) => graph.initializers.get(name),
    opset: graph.opset,
  };
  for (const node of graph.nodes) {
    const outs = inferNode(ctx, node);
    node.outputs.forEach((o, i) => {
      if (o !== "" && outs[i]) map.set(o, outs[i]);
    });
  }
  return map;
}

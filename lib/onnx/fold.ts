/**
 * Constant folding for a fixed input shape: Constant nodes, Identity, and sub-graphs whose inputs
 * are all known (Shape/Gather/Unsqueeze/Concat/ConstantOfShape/Expand chains and the like) are
 * evaluated on the host and replaced by initializers, so that every remaining tensor has a
 * static shape. Shapes of all values are recorded on the way.
 *
 * @module
 */
import { GraphError, ShapeError } from "./errors.ts";
import { attrInt, attrInts, describeNode, type Graph, type Node } from "./graph.ts";
import {
  axesOf,
  broadcastShapes,
  constantNodeValue,
  normAxis,
  reshapeDims,
  sliceAxes,
  splitSizes,
} from "./op_params.ts";
import { inferNode, type ShapeContext, type ShapeMap } from "./shape_inference.ts";
import { allocData, DataType, type HostTensor, isFloatType, sizeOf } from "./tensor.ts";

/** Options of {@link foldGraph}. */
export interface FoldOptions {
  /** Concrete shape of each graph input, by name. */
  inputShapes: Record<string, number[]>;
  /** Largest constant (elements) that folding may create (default 4,194,304). */
  maxElements?: number;
}

/** A folded graph with the shape and element type of every value. */
export interface FoldedGraph {
  graph: Graph;
  shapes: ShapeMap;
}

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

function castValue(v: number, to: number): number {
  if (isFloatType(to)) return v;
  if (to === DataType.BOOL) return v !== 0 ? 1 : 0;
  return Math.trunc(v);
}

type Evaluator = (ctx: ShapeContext, node: Node, inputs: HostTensor[]) => HostTensor[];

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

const EVAL: Record<string, Evaluator> = {
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
  Tile: (ctx, n, [a]) => {
    const dims = inferNode(ctx, n)[0].dims;
    const st = strides(a.dims);
    const ost = strides(dims);
    const data = allocData(a.dtype, sizeOf(dims));
    for (let i = 0; i < data.length; i++) {
      let rem = i, off = 0;
      for (let k = 0; k < dims.length; k++) {
        const c = Math.floor(rem / ost[k]);
        rem -= c * ost[k];
        off += (c % a.dims[k]) * st[k];
      }
      data[i] = a.data[off];
    }
    return [{ dtype: a.dtype, dims, data }];
  },
  Slice: (ctx, n, [a]) => {
    const axes = sliceAxes(ctx, n, a.dims);
    const dims = [...a.dims];
    const start = a.dims.map(() => 0);
    const step = a.dims.map(() => 1);
    for (const s of axes) {
      dims[s.axis] = s.count;
      start[s.axis] = s.start;
      step[s.axis] = s.step;
    }
    const st = strides(a.dims);
    const ost = strides(dims);
    const data = allocData(a.dtype, sizeOf(dims));
    for (let i = 0; i < data.length; i++) {
      let rem = i, off = 0;
      for (let k = 0; k < dims.length; k++) {
        const c = Math.floor(rem / ost[k]);
        rem -= c * ost[k];
        off += (start[k] + c * step[k]) * st[k];
      }
      data[i] = a.data[off];
    }
    return [{ dtype: a.dtype, dims, data }];
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

function isPlainDropout(node: Node): boolean {
  return node.opType === "Dropout" && node.outputs.filter((o) => o !== "").length === 1 &&
    !(node.inputs[2] ?? "");
}

/** Orders nodes so that every value is produced before it is used. */
export function topoSort(graph: Graph): Node[] {
  const known = new Set<string>([
    "",
    ...graph.inputs.map((v) => v.name),
    ...graph.initializers.keys(),
  ]);
  const pending = [...graph.nodes];
  const out: Node[] = [];
  while (pending.length > 0) {
    const before = pending.length;
    for (let i = 0; i < pending.length;) {
      const n = pending[i];
      if (n.inputs.every((x) => known.has(x))) {
        out.push(n);
        for (const o of n.outputs) known.add(o);
        pending.splice(i, 1);
      } else i++;
    }
    if (pending.length === before) {
      const n = pending[0];
      const missing = n.inputs.filter((x) => !known.has(x));
      throw new GraphError(
        `${describeNode(n)}: inputs [${missing.join(", ")}] are never produced (or form a cycle)`,
      );
    }
  }
  return out;
}

/** Removes nodes and initializers that do not contribute to the graph outputs. */
export function pruneGraph(graph: Graph): void {
  const needed = new Set(graph.outputs.map((o) => o.name));
  const kept: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i];
    if (n.outputs.some((o) => needed.has(o))) {
      kept.push(n);
      for (const x of n.inputs) needed.add(x);
    }
  }
  graph.nodes = kept.reverse();
  for (const k of [...graph.initializers.keys()]) {
    if (!needed.has(k)) graph.initializers.delete(k);
  }
}

/**
 * Folds constants for fixed input shapes and records the shape of every value. Returns a new
 * graph (the input graph is not modified; initializer tensors are shared).
 *
 * @example
 * ```ts
 * import { readGraph } from "./model_io.ts";
 * const decoder = await readGraph("vae_decoder.onnx");
 * const { graph, shapes } = foldGraph(decoder, { inputShapes: { latent_sample: [1, 4, 8, 8] } });
 * ```
 */
export function foldGraph(
  source: Graph,
  { inputShapes, maxElements = 1 << 22 }: FoldOptions,
): FoldedGraph {
  const graph: Graph = {
    ...source,
    // Copies, so that later passes may rewrite nodes without touching the caller's graph.
    nodes: topoSort(source).map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] })),
    initializers: new Map(source.initializers),
    inputs: source.inputs.map((v) => ({ ...v })),
    outputs: source.outputs.map((v) => ({ ...v })),
  };
  const shapes: ShapeMap = new Map();
  for (const v of graph.inputs) {
    const dims = inputShapes[v.name];
    if (!dims) throw new ShapeError(`no shape given for graph input "${v.name}"`);
    if (
      dims.length !== v.dims.length ||
      v.dims.some((d, i) => typeof d === "number" && d > 0 && d !== dims[i])
    ) {
      throw new ShapeError(
        `graph input "${v.name}": expected shape [${v.dims.join(", ")}], found [${
          dims.join(", ")
        }]`,
      );
    }
    shapes.set(v.name, { dims, dtype: v.dtype });
  }
  for (const [k, t] of graph.initializers) shapes.set(k, { dims: t.dims, dtype: t.dtype });
  const values = graph.initializers;
  const ctx: ShapeContext = {
    shape: (name) => {
      const t = shapes.get(name);
      if (!t) throw new ShapeError(`value "${name}" has no known shape`);
      return t.dims;
    },
    dtype: (name) => shapes.get(name)?.dtype ?? 0,
    value: (name) => values.get(name),
    opset: graph.opset,
  };
  const kept: Node[] = [];
  const alias = new Map<string, string>();
  const resolve = (name: string) => alias.get(name) ?? name;
  for (const node of graph.nodes) {
    node.inputs = node.inputs.map(resolve);
    if (node.opType === "Constant") {
      const t = constantNodeValue(node);
      values.set(node.outputs[0], t);
      shapes.set(node.outputs[0], { dims: t.dims, dtype: t.dtype });
      continue;
    }
    const types = inferNode(ctx, node);
    node.outputs.forEach((o, i) => {
      if (o !== "" && types[i]) shapes.set(o, types[i]);
    });
    const evaluator = EVAL[node.opType];
    const shapeOnly = node.opType === "Shape" || node.opType === "Size";
    const allConst = node.inputs.every((x) => x === "" || values.has(x));
    const small = types.every((t) => sizeOf(t.dims) <= maxElements);
    if (evaluator && (shapeOnly || allConst) && small) {
      const inputs = node.inputs.map((x) => values.get(x)!);
      const outs = evaluator(ctx, node, inputs);
      node.outputs.forEach((o, i) => {
        if (o !== "") values.set(o, outs[i]);
      });
      continue;
    }
    if ((node.opType === "Identity" || isPlainDropout(node)) && !values.has(node.inputs[0])) {
      // Pass-through: later nodes read the input directly.
      alias.set(node.outputs[0], resolve(node.inputs[0]));
      continue;
    }
    kept.push(node);
  }
  graph.nodes = kept;
  const outputNames = new Set(graph.outputs.map((o) => o.name));
  for (const out of graph.outputs) {
    const src = alias.get(out.name);
    if (src === undefined) continue;
    const producer = kept.find((n) => n.outputs.includes(src));
    if (producer && !outputNames.has(src)) {
      // Let the producer write the graph output under its public name.
      for (const n of kept) {
        n.inputs = n.inputs.map((x) => (x === src ? out.name : x));
        n.outputs = n.outputs.map((x) => (x === src ? out.name : x));
      }
      shapes.set(out.name, shapes.get(src)!);
    } else if (values.has(src)) {
      values.set(out.name, values.get(src)!);
    } else {
      kept.push({
        opType: "Identity",
        name: `${out.name}__identity`,
        domain: "",
        inputs: [src],
        outputs: [out.name],
        attrs: {},
      });
    }
  }
  // Graph outputs that folded to constants still need a producing node.
  for (const out of graph.outputs) {
    if (!graph.nodes.some((n) => n.outputs.includes(out.name)) && values.has(out.name)) {
      const src = `${out.name}__const`;
      values.set(src, values.get(out.name)!);
      graph.nodes.push({
        opType: "Identity",
        name: `${out.name}__identity`,
        domain: "",
        inputs: [src],
        outputs: [out.name],
        attrs: {},
      });
    }
  }
  pruneGraph(graph);
  return { graph, shapes };
}

/**
 * Gradient rules of the ops that move values without changing them: reshapes and views,
 * Transpose, Concat, Split, Slice, Pad, Gather, Expand and Tile. Each gradient is the adjoint
 * move: back to the input's shape, slicing what was concatenated, padding what was sliced,
 * summing what was repeated.
 *
 * @module
 */
import { attrInt, attrInts, attrString } from "../graph.ts";
import { normAxis, padsOf, sliceAxes, splitSizes } from "../op_params.ts";
import { sizeOf } from "../tensor.ts";
import {
  onlyInput0,
  padZeros,
  reduce,
  reduceTo,
  reshape,
  sliceAxis,
  unsupported,
  zeros,
} from "./emit.ts";
import type { VjpRule } from "./rule.ts";

const reshapeBack: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  return [reshape(b, gy[0]!, b.shape(node.inputs[0]))];
};

const transpose: VjpRule = (gy, node, b) => {
  const dims = b.shape(node.inputs[0]);
  const perm = attrInts(node, "perm", undefined) ?? dims.map((_, i) => dims.length - 1 - i);
  const inv = Array(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return [b.op("Transpose", [gy[0]!], { perm: inv })];
};

const concat: VjpRule = (gy, node, b) => {
  const rank = b.shape(node.outputs[0]).length;
  const axis = normAxis(attrInt(node, "axis", 0), rank, node);
  let offset = 0;
  return node.inputs.map((x, i) => {
    const d = b.shape(x)[axis];
    const g = b.needs[i] ? sliceAxis(b, gy[0]!, axis, offset, offset + d) : undefined;
    offset += d;
    return g;
  });
};

const split: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const dims = b.shape(node.inputs[0]);
  const axis = normAxis(attrInt(node, "axis", 0), dims.length, node);
  const parts = splitSizes(b, node, dims).map((s, i) => {
    const d = [...dims];
    d[axis] = s;
    return gy[i] ?? zeros(b, d);
  });
  return [b.op("Concat", parts, { axis })];
};

const slice: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const dims = b.shape(node.inputs[0]);
  const rank = dims.length;
  let g = gy[0]!;
  const cur = [...b.shape(node.outputs[0])];
  for (const s of sliceAxes(b, node, dims)) {
    const a = s.axis;
    if (s.count === 0) return [zeros(b, dims)];
    let first = s.start;
    let step = s.step;
    if (step < 0) {
      // Reverse along the axis so that positions increase.
      const [start, end, axis, back] = [[-1], [-(2 ** 62)], [a], [-1]].map((v) => b.int64s(v));
      g = b.op("Slice", [g, start, end, axis, back]);
      first = s.start + (s.count - 1) * step;
      step = -step;
    }
    if (step > 1) {
      // Interleave step−1 zeros after every element, then drop the trailing ones.
      g = reshape(b, g, [...cur.slice(0, a + 1), 1, ...cur.slice(a + 1)]);
      const pads = Array(2 * (rank + 1)).fill(0);
      pads[a + 1 + rank + 1] = step - 1;
      g = padZeros(b, g, pads);
      const merged = [...cur];
      merged[a] = cur[a] * step;
      g = reshape(b, g, merged);
      g = sliceAxis(b, g, a, 0, (s.count - 1) * step + 1);
      cur[a] = (s.count - 1) * step + 1;
    }
    const pads = Array(2 * rank).fill(0);
    pads[a] = first;
    pads[a + rank] = dims[a] - first - cur[a];
    if (pads[a] !== 0 || pads[a + rank] !== 0) g = padZeros(b, g, pads);
    cur[a] = dims[a];
  }
  return [g];
};

const pad: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const mode = attrString(node, "mode", "constant");
  if (mode !== "constant") unsupported(node, `pad mode "${mode}" (only "constant" has a rule)`);
  const rank = b.shape(node.inputs[0]).length;
  const pads = padsOf(b, node, rank);
  let g = gy[0]!;
  const out = b.shape(node.outputs[0]);
  const starts: number[] = [], ends: number[] = [], axes: number[] = [];
  const grow = Array(2 * rank).fill(0);
  for (let i = 0; i < rank; i++) {
    const begin = pads[i], end = pads[i + rank];
    if (begin > 0 || end > 0) {
      axes.push(i);
      starts.push(Math.max(begin, 0));
      ends.push(out[i] - Math.max(end, 0));
    }
    grow[i] = Math.max(-begin, 0);
    grow[i + rank] = Math.max(-end, 0);
  }
  if (axes.length > 0) g = b.op("Slice", [g, b.int64s(starts), b.int64s(ends), b.int64s(axes)]);
  if (grow.some((v) => v > 0)) g = padZeros(b, g, grow);
  return [g];
};

const gather: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const [x, indices] = node.inputs;
  const iv = b.value(indices);
  if (!iv) unsupported(node, `indices "${indices}" must be constant`);
  const dims = b.shape(x);
  const axis = normAxis(attrInt(node, "axis", 0), dims.length, node);
  const d = dims[axis];
  const k = sizeOf(iv.dims);
  const pre = sizeOf(dims.slice(0, axis));
  const post = sizeOf(dims.slice(axis + 1));
  // Scatter-add as a product with a one-hot matrix: repeated indices accumulate.
  const m = new Float64Array(d * k);
  for (let j = 0; j < k; j++) {
    const idx = iv.data[j] < 0 ? iv.data[j] + d : iv.data[j];
    m[idx * k + j] += 1;
  }
  const onehot = b.constant([d, k], m, "gather_onehot");
  const g3 = reshape(b, gy[0]!, [pre, k, post]);
  return [reshape(b, b.op("MatMul", [onehot, g3]), dims), undefined];
};

const expand: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  return [reduceTo(b, gy[0]!, b.shape(node.outputs[0]), b.shape(node.inputs[0])), undefined];
};

const tile: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const dims = b.shape(node.inputs[0]);
  const reps = b.shape(node.outputs[0]).map((o, i) => o / dims[i]);
  const g = reshape(b, gy[0]!, dims.flatMap((d, i) => [reps[i], d]));
  return [reduce(b, "ReduceSum", g, dims.map((_, i) => 2 * i), 0), undefined];
};

/**
 * Rules of Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split, Slice, Pad, Gather,
 * Expand and Tile.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(SHAPE_OP_RULES.Flatten, SHAPE_OP_RULES.Reshape);
 * ```
 */
export const SHAPE_OP_RULES: Readonly<Record<string, VjpRule>> = {
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: transpose,
  Concat: concat,
  Split: split,
  Slice: slice,
  Pad: pad,
  Gather: gather,
  Expand: expand,
  Tile: tile,
};

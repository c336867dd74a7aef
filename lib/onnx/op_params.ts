/**
 * What a node's attributes and constant inputs mean, resolved against its input shapes as the
 * ONNX specification says: axes (negative ones normalized), broadcasting, Slice bounds, Resize
 * scales and sizes, Pad pads, Split sizes, Reshape's 0 and -1, Constant values. Shape
 * inference, folding and the gradient rules all read nodes through these.
 *
 * @module
 */
import { ShapeError } from "./errors.ts";
import { attrFloat, attrInt, attrInts, attrString, describeNode, type Node } from "./graph.ts";
import type { ShapeContext } from "./shape_inference.ts";
import { DataType, type HostTensor, sizeOf } from "./tensor.ts";

/**
 * Normalizes a possibly negative axis for a tensor of the given rank.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(normAxis(-1, 4), 3);
 * assert.throws(() => normAxis(4, 4), /axis 4 out of range for rank 4/);
 * ```
 */
export function normAxis(axis: number, rank: number, node?: Node): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    throw new ShapeError(
      `${node ? describeNode(node) + ": " : ""}axis ${axis} out of range for rank ${rank}`,
    );
  }
  return a;
}

/**
 * Numpy-style broadcast of shapes; throws naming the node when they are incompatible.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(broadcastShapes([[2, 1, 5], [3, 1]]), [2, 3, 5]);
 * assert.throws(() => broadcastShapes([[2], [3]]), /cannot be broadcast/);
 * ```
 */
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

/**
 * Reads a constant int input (axes, shape, pads) or fails naming the node.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const node = (opType: string, inputs: string[], attrs = {}) =>
 *   ({ opType, name: "n", domain: "", inputs, outputs: ["y"], attrs });
 * const consts: Record<string, number[]> = {};
 * const ctx = {
 *   shape: () => [],
 *   dtype: () => 7,
 *   value: (name: string) =>
 *     consts[name] && { dtype: 7, dims: [consts[name].length], data: Float64Array.from(consts[name]) },
 *   opset: 17,
 * };
 * consts.shape = [4, -1];
 * assert.deepEqual(constInts(ctx, node("Reshape", ["x", "shape"]), 1, "shape"), [4, -1]);
 * assert.throws(() => constInts(ctx, node("Reshape", ["x", "s"]), 1, "shape"), /must be constant/);
 * ```
 */
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

/**
 * True when the optional input `index` is given (present and non-empty name).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const resize = { opType: "Resize", name: "r", domain: "", inputs: ["x", "", "scales"], outputs: ["y"], attrs: {} };
 * assert.deepEqual([1, 2, 3].map((i) => hasInput(resize, i)), [false, true, false]);
 * ```
 */
export function hasInput(node: Node, index: number): boolean {
  return node.inputs.length > index && node.inputs[index] !== "";
}

/**
 * The axes of a Reduce* / Squeeze / Unsqueeze node (attribute or input, by opset).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const node = (opType: string, inputs: string[], attrs = {}) =>
 *   ({ opType, name: "n", domain: "", inputs, outputs: ["y"], attrs });
 * const consts: Record<string, number[]> = {};
 * const ctx = {
 *   shape: () => [],
 *   dtype: () => 7,
 *   value: (name: string) =>
 *     consts[name] && { dtype: 7, dims: [consts[name].length], data: Float64Array.from(consts[name]) },
 *   opset: 17,
 * };
 * consts.axes = [1, 2];
 * assert.deepEqual(axesOf(ctx, node("ReduceSum", ["x", "axes"]), 1), [1, 2]);
 * assert.equal(axesOf(ctx, node("ReduceSum", ["x"]), 1), undefined); // all axes
 * ```
 */
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

/**
 * Resolves the starts/ends/axes/steps of a Slice node against the data shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const node = (opType: string, inputs: string[], attrs = {}) =>
 *   ({ opType, name: "n", domain: "", inputs, outputs: ["y"], attrs });
 * const consts: Record<string, number[]> = {};
 * const ctx = {
 *   shape: () => [],
 *   dtype: () => 7,
 *   value: (name: string) =>
 *     consts[name] && { dtype: 7, dims: [consts[name].length], data: Float64Array.from(consts[name]) },
 *   opset: 17,
 * };
 * Object.assign(consts, { starts: [-1], ends: [-100], axes: [1], steps: [-2] });
 * const slice = node("Slice", ["x", "starts", "ends", "axes", "steps"]);
 * // x[:, 8::-2] of a [2, 9] tensor: 5 elements from index 8 down.
 * assert.deepEqual(sliceAxes(ctx, slice, [2, 9]), [{ axis: 1, start: 8, step: -2, count: 5 }]);
 * ```
 */
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

/**
 * Resize parameters: output dims and per-axis scales (as used for coordinates).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const node = (opType: string, inputs: string[], attrs = {}) =>
 *   ({ opType, name: "n", domain: "", inputs, outputs: ["y"], attrs });
 * const ctx = {
 *   shape: () => [],
 *   dtype: () => 1,
 *   value: () => ({ dtype: 1, dims: [4], data: Float32Array.of(1, 1, 2, 1.5) }),
 *   opset: 17,
 * };
 * const resize = node("Resize", ["x", "", "scales"]);
 * assert.deepEqual(resizeParams(ctx, resize, [1, 3, 4, 4]), { out: [1, 3, 8, 6], scales: [1, 1, 2, 1.5] });
 * ```
 */
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

/**
 * Output dims of a Reshape given data dims and the requested shape (0 / -1 resolved).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const node = (opType: string, inputs: string[], attrs = {}) =>
 *   ({ opType, name: "n", domain: "", inputs, outputs: ["y"], attrs });
 * assert.deepEqual(reshapeDims(node("Reshape", []), [2, 3, 4], [0, -1]), [2, 12]);
 * assert.throws(() => reshapeDims(node("Reshape", []), [2, 3], [4, -1]), /cannot reshape/);
 * ```
 */
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

/**
 * The sizes of a Split node's outputs along its axis.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const ctx = { shape: () => [], dtype: () => 1, value: () => undefined, opset: 17 };
 * const split = { opType: "Split", name: "s", domain: "", inputs: ["x"], outputs: ["a", "b", "c"], attrs: {} };
 * assert.deepEqual(splitSizes(ctx, split, [7, 2]), [3, 3, 1]); // even parts, the last smaller
 * ```
 */
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

/**
 * The pads of a Pad node, [begin..., end...] over all axes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const node = (opType: string, inputs: string[], attrs = {}) =>
 *   ({ opType, name: "n", domain: "", inputs, outputs: ["y"], attrs });
 * const consts: Record<string, number[]> = {};
 * const ctx = {
 *   shape: () => [],
 *   dtype: () => 7,
 *   value: (name: string) =>
 *     consts[name] && { dtype: 7, dims: [consts[name].length], data: Float64Array.from(consts[name]) },
 *   opset: 17,
 * };
 * Object.assign(consts, { pads: [1, 2], axes: [-1] });
 * assert.deepEqual(padsOf(ctx, node("Pad", ["x", "pads", "", "axes"]), 3), [0, 0, 1, 0, 0, 2]);
 * ```
 */
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

/**
 * The value of a Constant node (value, value_float(s), value_int(s)).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const constant = {
 *   opType: "Constant",
 *   name: "c",
 *   domain: "",
 *   inputs: [],
 *   outputs: ["y"],
 *   attrs: { value_ints: { type: "ints" as const, value: [2, 3] } },
 * };
 * assert.deepEqual([...constantNodeValue(constant).data], [2, 3]);
 * ```
 */
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

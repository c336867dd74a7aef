/**
 * Gradient rules of ReduceSum and ReduceMean: the output gradient spread back over the reduced
 * axes (divided by their size for the mean).
 *
 * @module
 */
import { attrInt } from "../graph.ts";
import { axesOf, normAxis } from "../op_params.ts";
import { onlyInput0, reshape } from "./emit.ts";
import type { VjpRule } from "./rule.ts";

const reduceRule = (mean: boolean): VjpRule => (gy, node, b) => {
  onlyInput0(node, b.needs);
  const dims = b.shape(node.inputs[0]);
  const axesAsInput = node.opType === "ReduceSum" ? 13 : 18;
  let axes = axesOf(b, node, b.opset >= axesAsInput ? 1 : 99);
  if (!axes || axes.length === 0) {
    if (attrInt(node, "noop_with_empty_axes", 0)) return [gy[0]!];
    axes = dims.map((_, i) => i);
  }
  const set = new Set(axes.map((a) => normAxis(a, dims.length, node)));
  let g = gy[0]!;
  if (attrInt(node, "keepdims", 1) === 0) {
    g = reshape(b, g, dims.map((d, i) => (set.has(i) ? 1 : d)));
  }
  if (mean) {
    const count = dims.reduce((a, d, i) => (set.has(i) ? a * d : a), 1);
    g = b.op("Mul", [g, b.scalar(1 / count)]);
  }
  return [b.op("Expand", [g, b.int64s(dims)])];
};

/**
 * Rules of ReduceMean and ReduceSum.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(Object.keys(REDUCTION_RULES), ["ReduceMean", "ReduceSum"]);
 * ```
 */
export const REDUCTION_RULES: Readonly<Record<string, VjpRule>> = {
  ReduceMean: reduceRule(true),
  ReduceSum: reduceRule(false),
};

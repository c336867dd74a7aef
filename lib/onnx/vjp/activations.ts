/**
 * Gradient rules of the activations, of softmax and log-softmax, and of SiLU, the fused op that
 * `silu_fusion.ts` makes of x·Sigmoid(x) before the walk.
 *
 * @module
 */
import { attrFloat, attrInt, type Node } from "../graph.ts";
import { normAxis } from "../op_params.ts";
import { onlyInput0, reduce, unaryRule } from "./emit.ts";
import type { RuleBuilder, VjpRule } from "./rule.ts";
import { SILU } from "./silu_fusion.ts";

/**
 * SiLU, y = x·s with s = Sigmoid(x) (outputs [y, s]): dy/dx = s + x·s(1−s) = y + s(1−y), from the
 * forward values alone; cheaper than the Mul and Sigmoid rules and the sum of their two
 * contributions to x.
 */
const silu: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const [y, s] = node.outputs;
  const parts: string[] = [];
  if (gy[0]) {
    const d = b.op("Add", [y, b.op("Mul", [s, b.op("Sub", [b.scalar(1), y])])]);
    parts.push(b.op("Mul", [gy[0], d]));
  }
  // The sigmoid read elsewhere too (a seeded value): its own gradient, s(1−s).
  if (gy[1]) parts.push(b.op("Mul", [gy[1], b.op("Mul", [s, b.op("Sub", [b.scalar(1), s])])]));
  return [parts.length === 1 ? parts[0] : b.op("Sum", parts)];
};

/** Softmax-family reductions run over one axis from opset 13, over all trailing axes before. */
function softmaxAxes(node: Node, b: RuleBuilder): number[] {
  const dims = b.shape(node.inputs[0]);
  const axis = normAxis(attrInt(node, "axis", b.opset >= 13 ? -1 : 1), dims.length, node);
  return b.opset >= 13 ? [axis] : dims.map((_, i) => i).slice(axis);
}

const softmax: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const axes = softmaxAxes(node, b);
  const y = node.outputs[0];
  const s = reduce(b, "ReduceSum", b.op("Mul", [gy[0]!, y]), axes, 1);
  return [b.op("Mul", [y, b.op("Sub", [gy[0]!, s])])];
};

const logSoftmax: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const axes = softmaxAxes(node, b);
  const s = reduce(b, "ReduceSum", gy[0]!, axes, 1);
  return [b.op("Sub", [gy[0]!, b.op("Mul", [b.op("Exp", [node.outputs[0]]), s])])];
};

/**
 * Rules of Sigmoid, Relu, LeakyRelu, Tanh, Erf, Softmax, LogSoftmax and the fused SiLU.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.ok("Sigmoid" in ACTIVATION_RULES && "SiLU" in ACTIVATION_RULES);
 * ```
 */
export const ACTIVATION_RULES: Readonly<Record<string, VjpRule>> = {
  Sigmoid: unaryRule((b, _x, y, gy) =>
    b.op("Mul", [gy, b.op("Mul", [y, b.op("Sub", [b.scalar(1), y])])])
  ),
  Relu: unaryRule((b, _x, y, gy) =>
    b.op("Where", [b.op("Greater", [y, b.scalar(0)]), gy, b.scalar(0)])
  ),
  LeakyRelu: unaryRule((b, x, _y, gy, node) => {
    const alpha = attrFloat(node, "alpha", 0.01);
    return b.op("Where", [
      b.op("Greater", [x, b.scalar(0)]),
      gy,
      b.op("Mul", [gy, b.scalar(alpha)]),
    ]);
  }),
  Tanh: unaryRule((b, _x, y, gy) =>
    b.op("Mul", [gy, b.op("Sub", [b.scalar(1), b.op("Mul", [y, y])])])
  ),
  Erf: unaryRule((b, x, _y, gy) => {
    const e = b.op("Exp", [b.op("Neg", [b.op("Mul", [x, x])])]);
    return b.op("Mul", [gy, b.op("Mul", [e, b.scalar(2 / Math.sqrt(Math.PI))])]);
  }),
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  [SILU]: silu,
};

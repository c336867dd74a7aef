/**
 * Small compositions the rules of several op families share: reshapes, reductions, the sum of a
 * broadcast gradient back to its input's shape, pads and slices, and the errors a rule raises
 * for what it does not support.
 *
 * @module
 */
import { UnsupportedOpError } from "../errors.ts";
import { describeNode, type Node } from "../graph.ts";
import type { RuleBuilder, VjpRule } from "./rule.ts";

/**
 * Throws {@link UnsupportedOpError} naming the node.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnsupportedOpError } from "../errors.ts";
 * const node = { opType: "Pad", name: "p", domain: "", inputs: [], outputs: [], attrs: {} };
 * assert.throws(() => unsupported(node, 'pad mode "reflect"'), UnsupportedOpError);
 * ```
 */
export function unsupported(node: Node, what: string): never {
  throw new UnsupportedOpError(`${describeNode(node)}: ${what}`);
}

/**
 * Throws when a gradient is needed for any input but the first (weights, indices, shapes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const node = { opType: "Conv", name: "c", domain: "", inputs: ["x", "w"], outputs: ["y"], attrs: {} };
 * onlyInput0(node, [true, false]);
 * assert.throws(() => onlyInput0(node, [true, true]), /input 1 \("w"\)/);
 * ```
 */
export function onlyInput0(node: Node, needs: readonly boolean[]): void {
  needs.forEach((need, i) => {
    if (need && i > 0) {
      unsupported(
        node,
        `gradient with respect to input ${i} ("${node.inputs[i]}") is not supported`,
      );
    }
  });
}

/**
 * An elementwise rule `gx = f'(x, y, gy)` for ops of one differentiable input (`node` for its
 * attributes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const neg = unaryRule((b, _x, _y, gy) => b.op("Neg", [gy]));
 * assert.equal(typeof neg, "function");
 * ```
 */
export function unaryRule(
  dfdx: (b: RuleBuilder, x: string, y: string, gy: string, node: Node) => string,
): VjpRule {
  return (gy, node, b) => {
    onlyInput0(node, b.needs);
    return [dfdx(b, node.inputs[0], node.outputs[0], gy[0]!, node)];
  };
}

/**
 * `x` reshaped to `dims`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../graph_builder.ts";
 * import { inferShapes } from "../shape_inference.ts";
 * import { NodeRuleBuilder } from "./rule_builder.ts";
 * const g = new GraphBuilder({ opset: 17 });
 * const x = g.input("x", 1, [2, 3, 4]);
 * g.node("Relu", [x]);
 * const b = new NodeRuleBuilder(g, g.graph.nodes[0], [true], inferShapes(g.graph, { x: [2, 3, 4] }));
 * const flat = reshape(b, x, [-1]);
 * assert.equal(g.graph.nodes.at(-1)!.opType, "Reshape");
 * assert.equal(g.graph.nodes.at(-1)!.outputs[0], flat);
 * ```
 */
export function reshape(b: RuleBuilder, x: string, dims: number[]): string {
  return b.op("Reshape", [x, b.int64s(dims)]);
}

/**
 * ReduceSum or ReduceMean over `axes`, with the axes as an input or an attribute as the
 * graph's opset wants them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../graph_builder.ts";
 * import { inferShapes } from "../shape_inference.ts";
 * import { NodeRuleBuilder } from "./rule_builder.ts";
 * const g = new GraphBuilder({ opset: 17 });
 * const x = g.input("x", 1, [2, 3, 4]);
 * g.node("Relu", [x]);
 * const b = new NodeRuleBuilder(g, g.graph.nodes[0], [true], inferShapes(g.graph, { x: [2, 3, 4] }));
 * reduce(b, "ReduceSum", x, [0, 2], 1);
 * // Opset 17 takes ReduceSum's axes as an input.
 * assert.equal(g.graph.nodes.at(-1)!.inputs.length, 2);
 * ```
 */
export function reduce(
  b: RuleBuilder,
  type: "ReduceSum" | "ReduceMean",
  x: string,
  axes: number[],
  keepdims: number,
): string {
  const asInput = type === "ReduceSum" ? b.opset >= 13 : b.opset >= 18;
  return asInput
    ? b.op(type, [x, b.int64s(axes)], { keepdims })
    : b.op(type, [x], { axes, keepdims });
}

/**
 * Sums a broadcast gradient of shape `from` down to an input of shape `to`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../graph_builder.ts";
 * import { inferShapes } from "../shape_inference.ts";
 * import { NodeRuleBuilder } from "./rule_builder.ts";
 * const g = new GraphBuilder({ opset: 17 });
 * const x = g.input("x", 1, [2, 3, 4]);
 * g.node("Relu", [x]);
 * const b = new NodeRuleBuilder(g, g.graph.nodes[0], [true], inferShapes(g.graph, { x: [2, 3, 4] }));
 * reduceTo(b, x, [2, 3, 4], [3, 1]);
 * const sum = g.graph.nodes.at(-1)!;
 * assert.equal(sum.opType, "Reshape");
 * assert.equal(g.graph.nodes.at(-2)!.opType, "ReduceSum");
 * ```
 */
export function reduceTo(b: RuleBuilder, g: string, from: number[], to: number[]): string {
  const lead = from.length - to.length;
  const axes: number[] = [];
  for (let i = 0; i < from.length; i++) {
    const t = i < lead ? 1 : to[i - lead];
    if (i < lead || (t === 1 && from[i] !== 1)) axes.push(i);
  }
  let out = g;
  if (axes.length > 0) out = reduce(b, "ReduceSum", out, axes, 1);
  if (lead > 0) out = reshape(b, out, to);
  return out;
}

/**
 * `x[start:end]` along one axis.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../graph_builder.ts";
 * import { inferShapes } from "../shape_inference.ts";
 * import { NodeRuleBuilder } from "./rule_builder.ts";
 * const g = new GraphBuilder({ opset: 17 });
 * const x = g.input("x", 1, [2, 3, 4]);
 * g.node("Relu", [x]);
 * const b = new NodeRuleBuilder(g, g.graph.nodes[0], [true], inferShapes(g.graph, { x: [2, 3, 4] }));
 * sliceAxis(b, x, 1, 0, 2);
 * assert.equal(g.graph.nodes.at(-1)!.opType, "Slice");
 * ```
 */
export function sliceAxis(
  b: RuleBuilder,
  x: string,
  axis: number,
  start: number,
  end: number,
): string {
  return b.op("Slice", [x, b.int64s([start]), b.int64s([end]), b.int64s([axis])]);
}

/**
 * `x` padded with zeros by `pads` ([begin…, end…] as in ONNX).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../graph_builder.ts";
 * import { inferShapes } from "../shape_inference.ts";
 * import { NodeRuleBuilder } from "./rule_builder.ts";
 * const g = new GraphBuilder({ opset: 17 });
 * const x = g.input("x", 1, [2, 3, 4]);
 * g.node("Relu", [x]);
 * const b = new NodeRuleBuilder(g, g.graph.nodes[0], [true], inferShapes(g.graph, { x: [2, 3, 4] }));
 * padZeros(b, x, [0, 1, 0, 0, 1, 0]);
 * assert.deepEqual(g.graph.nodes.at(-1)!.attrs.mode, { type: "string", value: "constant" });
 * ```
 */
export function padZeros(b: RuleBuilder, x: string, pads: number[]): string {
  return b.op("Pad", [x, b.int64s(pads)], { mode: "constant" });
}

/**
 * Zeros of shape `dims` in the node's float type.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../graph_builder.ts";
 * import { inferShapes } from "../shape_inference.ts";
 * import { NodeRuleBuilder } from "./rule_builder.ts";
 * const g = new GraphBuilder({ opset: 17 });
 * const x = g.input("x", 1, [2, 3, 4]);
 * g.node("Relu", [x]);
 * const b = new NodeRuleBuilder(g, g.graph.nodes[0], [true], inferShapes(g.graph, { x: [2, 3, 4] }));
 * zeros(b, [2, 3]);
 * assert.equal(g.graph.nodes.at(-1)!.opType, "Expand");
 * ```
 */
export function zeros(b: RuleBuilder, dims: number[]): string {
  return b.op("Expand", [b.scalar(0), b.int64s(dims)]);
}

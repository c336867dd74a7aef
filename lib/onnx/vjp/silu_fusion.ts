/**
 * SiLU written as x·Sigmoid(x) (as exporters write it: SD VAE, TAESD) becomes, for the walk, one
 * node of the fused op `SiLU` with outputs [x·s, s]. Its rule takes the gradient to x in one
 * step from the forward values; the Mul and Sigmoid rules would emit more nodes and sum two
 * contributions to x. The forward graph is not changed: the fused node exists only in the list
 * of nodes the walk differentiates.
 *
 * @module
 */
import type { Node } from "../graph.ts";
import type { VjpFusion } from "./rule.ts";

/** The op type of the fused node; no ONNX op has this name. */
export const SILU = "SiLU";

function isDefaultDomain(n: Node): boolean {
  return n.domain === "" || n.domain === "ai.onnx";
}

/**
 * Replaces each Mul(x, Sigmoid(x)) (either order) whose sigmoid feeds only that Mul by one SiLU
 * node at the Mul's place; the Sigmoid node leaves the list.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../graph_builder.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [4]);
 * const s = b.node("Sigmoid", [x]);
 * const y = b.node("Mul", [s, x]);
 * const fused = fuseSilu(b.graph.nodes);
 * assert.equal(fused.length, 1);
 * assert.equal(fused[0].opType, SILU);
 * assert.deepEqual(fused[0].inputs, [x]);
 * assert.deepEqual(fused[0].outputs, [y, s]);
 * ```
 */
export const fuseSilu: VjpFusion = (nodes) => {
  const producer = new Map<string, Node>();
  const readers = new Map<string, number>();
  for (const n of nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) readers.set(i, (readers.get(i) ?? 0) + 1);
  }
  const fused = new Map<Node, Node>();
  const absorbed = new Set<Node>();
  for (const mul of nodes) {
    if (mul.opType !== "Mul" || !isDefaultDomain(mul) || mul.inputs.length !== 2) continue;
    for (const [xi, si] of [[0, 1], [1, 0]]) {
      const x = mul.inputs[xi], s = mul.inputs[si];
      const sig = producer.get(s);
      if (
        sig?.opType !== "Sigmoid" || !isDefaultDomain(sig) || sig.inputs[0] !== x ||
        readers.get(s) !== 1 || absorbed.has(sig)
      ) continue;
      absorbed.add(sig);
      fused.set(mul, {
        opType: SILU,
        name: mul.name,
        domain: "",
        inputs: [x],
        outputs: [mul.outputs[0], s],
        attrs: {},
      });
      break;
    }
  }
  return nodes.filter((n) => !absorbed.has(n)).map((n) => fused.get(n) ?? n);
};

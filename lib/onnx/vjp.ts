/**
 * The reverse walk: given seeds (gradients of some values), appends to a graph the nodes that
 * compute the gradients with respect to chosen inputs, applying the rules of `vjp_rules.ts`
 * after its fusions. Only nodes on a path from those inputs to the seeded values are
 * differentiated, and each rule is asked only for the input gradients that are needed.
 *
 * @module
 */
import { GraphError, UnsupportedOpError } from "./errors.ts";
import { describeNode, type Node } from "./graph.ts";
import type { GraphBuilder } from "./graph_builder.ts";
import type { ShapeMap } from "./shape_inference.ts";
import { isFloatType } from "./tensor.ts";
import { NodeRuleBuilder } from "./vjp/rule_builder.ts";
import { VJP_FUSIONS, VJP_RULES, type VjpFusion, type VjpRule } from "./vjp_rules.ts";

/** Options of {@link appendVjp}. */
export interface VjpOptions {
  /** Gradient value name for each seeded value (e.g. the loss's gradient w.r.t. the output). */
  seeds: Record<string, string>;
  /** Values (usually graph inputs) to differentiate with respect to. */
  wrt: string[];
  /** Shapes of all forward values (from folding / shape inference). */
  shapes: ShapeMap;
  /** Rule table (default {@link VJP_RULES}). */
  rules?: Readonly<Record<string, VjpRule>>;
  /** Passes over the forward nodes before the walk (default {@link VJP_FUSIONS}). */
  fusions?: readonly VjpFusion[];
}

/**
 * The nodes to differentiate, last first: those with an output that depends on a `wrt` value
 * and reaches a seed. Also returns which values depend on `wrt`.
 */
function gradientPath(
  nodes: readonly Node[],
  seeds: Record<string, string>,
  wrt: string[],
  isFloat: (name: string) => boolean,
): { active: Node[]; depends: Set<string> } {
  const depends = new Set(wrt);
  for (const n of nodes) {
    if (n.inputs.some((x) => depends.has(x))) {
      for (const o of n.outputs) if (isFloat(o)) depends.add(o);
    }
  }
  const reaches = new Set(Object.keys(seeds));
  const active: Node[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!n.outputs.some((o) => reaches.has(o) && depends.has(o))) continue;
    active.push(n);
    for (const x of n.inputs) if (depends.has(x)) reaches.add(x);
  }
  return { active, depends };
}

/** The gradient contributions to each value, summed (by one Sum node) when first read. */
class Contributions {
  readonly #b: GraphBuilder;
  readonly #lists = new Map<string, string[]>();

  constructor(b: GraphBuilder, seeds: Record<string, string>) {
    this.#b = b;
    for (const [k, g] of Object.entries(seeds)) this.#lists.set(k, [g]);
  }

  add(name: string, gradient: string): void {
    const list = this.#lists.get(name) ?? [];
    list.push(gradient);
    this.#lists.set(name, list);
  }

  total(name: string): string | undefined {
    const list = this.#lists.get(name);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) {
      const sum = this.#b.node("Sum", list, {}, { name: "grad_accumulate" });
      this.#lists.set(name, [sum]);
      return sum;
    }
    return list[0];
  }
}

function ruleFor(rules: Readonly<Record<string, VjpRule>>, node: Node): VjpRule {
  const rule = Object.hasOwn(rules, node.opType) ? rules[node.opType] : undefined;
  if (!rule || (node.domain !== "" && node.domain !== "ai.onnx")) {
    throw new UnsupportedOpError(
      `no gradient rule for op type "${node.opType}"${
        node.domain ? ` (domain ${node.domain})` : ""
      } at node "${node.name}"`,
    );
  }
  return rule;
}

/**
 * Appends the backward pass to the builder's graph and returns the gradient value name for each
 * `wrt` value. Throws {@link UnsupportedOpError} naming the op type and node when a node on the
 * gradient path has no rule.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * import { inferShapes } from "./shape_inference.ts";
 * const b = new GraphBuilder();
 * const latent = b.input("latent", 1, [1, 4]);
 * const sample = b.node("Tanh", [latent]);
 * const seed = b.input("sample_grad", 1, [1, 4]);
 * const shapes = inferShapes(b.graph, { latent: [1, 4], sample_grad: [1, 4] });
 * const grads = appendVjp(b, { seeds: { [sample]: seed }, wrt: ["latent"], shapes });
 * assert.equal(b.graph.nodes.at(-1)!.outputs[0], grads.latent); // gy·(1 − y²)
 * ```
 */
export function appendVjp(
  b: GraphBuilder,
  { seeds, wrt, shapes, rules = VJP_RULES, fusions = VJP_FUSIONS }: VjpOptions,
): Record<string, string> {
  const isFloat = (name: string) => isFloatType(shapes.get(name)?.dtype ?? 0);
  const nodes = fusions.reduce((list: Node[], fuse) => fuse(list), [...b.graph.nodes]);
  const { active, depends } = gradientPath(nodes, seeds, wrt, isFloat);
  const sums = new Contributions(b, seeds);
  for (const node of active) {
    const gy = node.outputs.map((o) => sums.total(o));
    if (gy.every((g) => g === undefined)) continue;
    const rule = ruleFor(rules, node);
    const needs = node.inputs.map((x) => x !== "" && depends.has(x) && isFloat(x));
    const gx = rule(gy, node, new NodeRuleBuilder(b, node, needs, shapes));
    node.inputs.forEach((x, i) => {
      if (!needs[i]) return;
      if (!gx[i]) {
        throw new GraphError(`${describeNode(node)}: rule gave no gradient for input ${i} "${x}"`);
      }
      sums.add(x, gx[i]);
    });
  }
  const out: Record<string, string> = {};
  for (const w of wrt) {
    const g = sums.total(w);
    if (!g) throw new GraphError(`no seeded value depends on "${w}"; its gradient would be zero`);
    out[w] = g;
  }
  return out;
}

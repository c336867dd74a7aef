/**
 * The reverse walk: given seeds (gradients of some values), appends to a graph the nodes that
 * compute the gradients with respect to chosen inputs, applying the rules of `vjp_rules.ts`.
 * Only nodes on a path from those inputs to the seeded values are differentiated, and each
 * rule is asked only for the input gradients that are needed.
 *
 * @module
 */
import { GraphError, UnsupportedOpError } from "./errors.ts";
import { describeNode } from "./graph.ts";
import type { GraphBuilder } from "./graph_builder.ts";
import type { ShapeMap } from "./shape_inference.ts";
import { isFloatType } from "./tensor.ts";
import { type RuleContext, VJP_RULES, type VjpRule } from "./vjp_rules.ts";

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
}

/**
 * Appends the backward pass to the builder's graph and returns the gradient value name for each
 * `wrt` value. Throws {@link UnsupportedOpError} naming the op type and node when a node on the
 * gradient path has no rule.
 *
 * @example
 * ```ts
 * import type { GraphBuilder } from "./graph_builder.ts";
 * import type { ShapeMap } from "./shape_inference.ts";
 * declare const builder: GraphBuilder; // holds the forward graph: latent → sample
 * declare const shapes: ShapeMap;
 * declare const gSample: string; // name of the loss gradient w.r.t. sample, already in the graph
 * const grads = appendVjp(builder, { seeds: { sample: gSample }, wrt: ["latent"], shapes });
 * ```
 */
export function appendVjp(
  b: GraphBuilder,
  { seeds, wrt, shapes, rules = VJP_RULES }: VjpOptions,
): Record<string, string> {
  const forward = [...b.graph.nodes];
  const dtype = (name: string) => shapes.get(name)?.dtype ?? 0;
  const depends = new Set(wrt);
  for (const n of forward) {
    if (n.inputs.some((x) => depends.has(x))) {
      for (const o of n.outputs) if (isFloatType(dtype(o))) depends.add(o);
    }
  }
  const reaches = new Set(Object.keys(seeds));
  const active: typeof forward = [];
  for (let i = forward.length - 1; i >= 0; i--) {
    const n = forward[i];
    if (!n.outputs.some((o) => reaches.has(o) && depends.has(o))) continue;
    active.push(n);
    for (const x of n.inputs) if (depends.has(x)) reaches.add(x);
  }
  const contributions = new Map<string, string[]>();
  for (const [k, g] of Object.entries(seeds)) contributions.set(k, [g]);
  const gradOf = (name: string): string | undefined => {
    const list = contributions.get(name);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) {
      const total = b.node("Sum", list, {}, { name: "grad_accumulate" });
      contributions.set(name, [total]);
      return total;
    }
    return list[0];
  };
  const value = (name: string) => b.graph.initializers.get(name);
  const producers = new Map<string, (typeof forward)[number]>();
  const consumers = new Map<string, (typeof forward)[number][]>();
  for (const n of forward) {
    for (const o of n.outputs) producers.set(o, n);
    for (const i of n.inputs) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  }
  for (const node of active) {
    const gy = node.outputs.map(gradOf);
    if (gy.every((g) => g === undefined)) continue;
    const rule = rules[node.opType];
    if (!rule || (node.domain !== "" && node.domain !== "ai.onnx")) {
      throw new UnsupportedOpError(
        `no gradient rule for op type "${node.opType}"${
          node.domain ? ` (domain ${node.domain})` : ""
        } at node "${node.name}"`,
      );
    }
    const needs = node.inputs.map((x) => x !== "" && depends.has(x) && isFloatType(dtype(x)));
    const ctx: RuleContext = {
      b,
      node,
      gy,
      needs,
      opset: b.opset,
      shape: (name) => {
        const t = shapes.get(name);
        if (!t) throw new GraphError(`${describeNode(node)}: value "${name}" has no known shape`);
        return t.dims;
      },
      dtype: (name) => dtype(name),
      value,
      producer: (name) => producers.get(name),
      consumers: (name) => consumers.get(name) ?? [],
    };
    const grads = rule(ctx);
    node.inputs.forEach((x, i) => {
      if (!needs[i]) return;
      const g = grads[i];
      if (g === null) return;
      if (!g) {
        throw new GraphError(`${describeNode(node)}: rule gave no gradient for input ${i} "${x}"`);
      }
      const list = contributions.get(x) ?? [];
      list.push(g);
      contributions.set(x, list);
    });
  }
  const out: Record<string, string> = {};
  for (const w of wrt) {
    const g = gradOf(w);
    if (!g) throw new GraphError(`no seeded value depends on "${w}"; its gradient would be zero`);
    out[w] = g;
  }
  return out;
}

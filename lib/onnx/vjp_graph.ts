/**
 * A graph's vector-Jacobian product as a standalone model: inputs are the graph's inputs plus
 * one seed per output (the gradient arriving at that output); outputs are the gradients with
 * respect to the chosen inputs.
 *
 * @module
 */
import { foldGraph, pruneGraph } from "./fold.ts";
import type { Graph } from "./graph.ts";
import { GraphBuilder } from "./graph_builder.ts";
import { encodeModel } from "./model_io.ts";
import { recomputeInBackward } from "./recompute.ts";
import { appendVjp } from "./vjp.ts";
import type { VjpRule } from "./vjp_rules.ts";

/** Options of {@link buildVjpGraph}. */
export interface VjpGraphOptions {
  /** Concrete shape of every graph input. */
  inputShapes: Record<string, number[]>;
  /** Inputs to differentiate with respect to (default: all float inputs). */
  wrt?: string[];
  /** Recompute cheap forward values in the backward pass (see `recompute.ts`; default true). */
  recompute?: boolean;
  /** Rule table (default: `VJP_RULES` of `vjp_rules.ts`). */
  rules?: Readonly<Record<string, VjpRule>>;
}

/** The VJP model and the names of its extra inputs and its outputs. */
export interface VjpGraph {
  bytes: Uint8Array;
  /** Seed input name for each original output name. */
  seeds: Record<string, string>;
  /** Gradient output name for each `wrt` input. */
  gradients: Record<string, string>;
  /** Shape of every original output. */
  outputShapes: Record<string, number[]>;
}

/**
 * Builds the VJP model of a graph for fixed input shapes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as ort from "onnxruntime-node";
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [1, 3, 8, 8]);
 * b.output(b.node("Mul", [x, x]), 1, [1, 3, 8, 8], "y");
 * const vjp = buildVjpGraph(b.graph, { inputShapes: { x: [1, 3, 8, 8] } });
 * // Feed { x, [vjp.seeds.y]: dy }, get { [vjp.gradients.x]: dx }: here dx = 2x·dy.
 * const session = await ort.InferenceSession.create(vjp.bytes);
 * const ones = new ort.Tensor("float32", new Float32Array(192).fill(1), [1, 3, 8, 8]);
 * const x3 = new ort.Tensor("float32", new Float32Array(192).fill(3), [1, 3, 8, 8]);
 * const out = await session.run({ x: x3, [vjp.seeds.y]: ones });
 * assert.equal(out[vjp.gradients.x].data[0], 6);
 * await session.release();
 * ```
 */
export function buildVjpGraph(
  source: Graph,
  { inputShapes, wrt, recompute = true, rules }: VjpGraphOptions,
): VjpGraph {
  const { graph, shapes } = foldGraph(source, { inputShapes });
  graph.inputs = graph.inputs.map((v) => ({ ...v, dims: inputShapes[v.name] }));
  const targets = wrt ?? graph.inputs.map((v) => v.name);
  const outputs = graph.outputs;
  graph.outputs = [];
  const b = new GraphBuilder({ graph });
  const seeds: Record<string, string> = {};
  const outputShapes: Record<string, number[]> = {};
  for (const o of outputs) {
    const t = shapes.get(o.name)!;
    outputShapes[o.name] = t.dims;
    seeds[o.name] = b.input(b.fresh(`${o.name}_seed`), t.dtype, t.dims);
    shapes.set(seeds[o.name], t);
  }
  const grads = appendVjp(b, { seeds, wrt: targets, shapes, rules });
  const gradients: Record<string, string> = {};
  for (const w of targets) {
    const t = shapes.get(w)!;
    gradients[w] = b.output(grads[w], t.dtype, t.dims, b.fresh(`${w}_grad`));
  }
  if (recompute) recomputeInBackward(b, { seeds: Object.values(seeds), shapes });
  pruneGraph(graph);
  // Seeds must stay inputs even when pruning leaves one unused (a constant output).
  return { bytes: encodeModel(graph), seeds, gradients, outputShapes };
}

/**
 * Constant folding for a fixed input shape: Constant nodes, Identity, and sub-graphs whose inputs
 * are all known (Shape/Gather/Unsqueeze/Concat/ConstantOfShape/Expand chains and the like) are
 * evaluated on the host (`host_eval.ts`) and replaced by initializers, so that every remaining
 * tensor has a static shape. Shapes of all values are recorded on the way.
 *
 * @module
 */
import { GraphError, ShapeError } from "./errors.ts";
import { describeNode, type Graph, type Node } from "./graph.ts";
import { HOST_EVALUATORS } from "./host_eval.ts";
import { constantNodeValue } from "./op_params.ts";
import { inferNode, type ShapeContext, type ShapeMap } from "./shape_inference.ts";
import { sizeOf } from "./tensor.ts";

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

/** A copy of `source` whose nodes later passes may rewrite (initializer tensors are shared). */
function copyGraph(source: Graph): Graph {
  return {
    ...source,
    nodes: topoSort(source).map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] })),
    initializers: new Map(source.initializers),
    inputs: source.inputs.map((v) => ({ ...v })),
    outputs: source.outputs.map((v) => ({ ...v })),
  };
}

/** The shapes of the graph's inputs (checked against their declared dims) and initializers. */
function knownShapes(graph: Graph, inputShapes: Record<string, number[]>): ShapeMap {
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
  return shapes;
}

/**
 * Walks the nodes in order, evaluating those whose inputs are all known (and whose outputs are
 * small), dropping pass-throughs, and recording every shape. Returns the nodes kept and, for
 * each dropped pass-through's output, the value it passed on.
 */
function foldNodes(
  graph: Graph,
  shapes: ShapeMap,
  maxElements: number,
): { kept: Node[]; alias: Map<string, string> } {
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
    const evaluator = HOST_EVALUATORS[node.opType];
    const shapeOnly = node.opType === "Shape" || node.opType === "Size";
    const allConst = node.inputs.every((x) => x === "" || values.has(x));
    const small = types.every((t) => sizeOf(t.dims) <= maxElements);
    if (evaluator && (shapeOnly || allConst) && small) {
      const outs = evaluator(ctx, node, node.inputs.map((x) => values.get(x)!));
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
  return { kept, alias };
}

function identity(output: string, input: string): Node {
  return {
    opType: "Identity",
    name: `${output}__identity`,
    domain: "",
    inputs: [input],
    outputs: [output],
    attrs: {},
  };
}

/** Makes every graph output the output of a kept node again, under its public name. */
function bindOutputs(graph: Graph, alias: Map<string, string>, shapes: ShapeMap): void {
  const kept = graph.nodes;
  const values = graph.initializers;
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
      kept.push(identity(out.name, src));
    }
  }
  // Graph outputs that folded to constants still need a producing node.
  for (const out of graph.outputs) {
    if (!kept.some((n) => n.outputs.includes(out.name)) && values.has(out.name)) {
      const src = `${out.name}__const`;
      values.set(src, values.get(out.name)!);
      kept.push(identity(out.name, src));
    }
  }
}

/**
 * Folds constants for fixed input shapes and records the shape of every value. Returns a new
 * graph (the input graph is not modified; initializer tensors are shared).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * const x = b.input("latent", 1, ["batch", 4]);
 * // The shape plumbing an exporter writes: Reshape to [batch, 2, 2] read off the input.
 * const batch = b.node("Gather", [b.node("Shape", [x]), b.int64s([0])]);
 * const shape = b.node("Concat", [batch, b.int64s([2, 2])], { axis: 0 });
 * b.output(b.node("Reshape", [x, shape]), 1, ["batch", 2, 2]);
 * const { graph, shapes } = foldGraph(b.graph, { inputShapes: { latent: [3, 4] } });
 * assert.deepEqual(graph.nodes.map((n) => n.opType), ["Reshape"]);
 * assert.deepEqual(shapes.get(graph.outputs[0].name)?.dims, [3, 2, 2]);
 * ```
 */
export function foldGraph(
  source: Graph,
  { inputShapes, maxElements = 1 << 22 }: FoldOptions,
): FoldedGraph {
  const graph = copyGraph(source);
  const shapes = knownShapes(graph, inputShapes);
  const { kept, alias } = foldNodes(graph, shapes, maxElements);
  graph.nodes = kept;
  bindOutputs(graph, alias, shapes);
  pruneGraph(graph);
  return { graph, shapes };
}

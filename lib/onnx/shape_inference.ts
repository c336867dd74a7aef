/**
 * Static shape inference: the output shapes (and element types) of every node of a graph from
 * its input shapes and, where an op needs them, constant input values. The shape function of
 * each op is in `shape_fns.ts`; what an op's attributes and constant inputs mean, in
 * `op_params.ts` and `window_geometry.ts`.
 *
 * @module
 */
import { ShapeError, UnsupportedOpError } from "./errors.ts";
import type { Graph, Node } from "./graph.ts";
import { SHAPE_FNS } from "./shape_fns.ts";
import type { HostTensor } from "./tensor.ts";

/** What a shape function may ask about a node's inputs. */
export interface ShapeContext {
  /** Shape of an input value (throws if unknown). */
  shape(name: string): number[];
  /** Element type of an input value. */
  dtype(name: string): number;
  /** Constant value of an input, when it is an initializer or folded constant. */
  value(name: string): HostTensor | undefined;
  /** Default-domain opset of the graph. */
  opset: number;
}

/** Inferred shape and element type of one value. */
export interface ValueType {
  dims: number[];
  dtype: number;
}

/** Shapes and element types of every value in a graph, by name. */
export type ShapeMap = Map<string, ValueType>;

/**
 * Infers the output types of one node; throws {@link UnsupportedOpError} naming an unknown op.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const ctx = { shape: () => [2, 3], dtype: () => 1, value: () => undefined, opset: 17 };
 * const node = (opType: string) => ({ opType, name: "n", domain: "", inputs: ["x"], outputs: ["y"], attrs: {} });
 * assert.deepEqual(inferNode(ctx, node("Sigmoid")), [{ dims: [2, 3], dtype: 1 }]);
 * assert.throws(() => inferNode(ctx, node("Frobnicate")), /op type "Frobnicate" at node "n"/);
 * ```
 */
export function inferNode(ctx: ShapeContext, node: Node): ValueType[] {
  const fn = SHAPE_FNS[node.opType];
  if (!fn || (node.domain !== "" && node.domain !== "ai.onnx")) {
    throw new UnsupportedOpError(
      `op type "${node.opType}" at node "${node.name}" is not supported (no shape inference)${
        node.domain ? ` (domain ${node.domain})` : ""
      }`,
    );
  }
  return fn(ctx, node);
}

/**
 * Records the shape and element type of every value of a graph whose inputs have the given
 * concrete shapes. Values an op needs as constants (Reshape shapes, axes…) must be initializers,
 * i.e. the graph should be folded first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * const latent = b.input("latent", 1, ["n", 4, "h", "w"]);
 * const up = b.node("Resize", [latent, "", b.constant(1, [4], [1, 1, 8, 8])]);
 * const sample = b.node("Conv", [up, b.constant(1, [3, 4, 1, 1], new Array(12).fill(0.25))]);
 * const shapes = inferShapes(b.graph, { latent: [1, 4, 8, 8] });
 * assert.deepEqual(shapes.get(sample)?.dims, [1, 3, 64, 64]);
 * ```
 */
export function inferShapes(graph: Graph, inputShapes: Record<string, number[]>): ShapeMap {
  const map: ShapeMap = new Map();
  for (const v of graph.inputs) {
    const dims = inputShapes[v.name];
    if (!dims) throw new ShapeError(`no shape given for graph input "${v.name}"`);
    map.set(v.name, { dims, dtype: v.dtype });
  }
  for (const [k, t] of graph.initializers) map.set(k, { dims: t.dims, dtype: t.dtype });
  const ctx: ShapeContext = {
    shape: (name) => {
      const t = map.get(name);
      if (!t) throw new ShapeError(`value "${name}" has no known shape`);
      return t.dims;
    },
    dtype: (name) => map.get(name)?.dtype ?? 0,
    value: (name) => graph.initializers.get(name),
    opset: graph.opset,
  };
  for (const node of graph.nodes) {
    const outs = inferNode(ctx, node);
    node.outputs.forEach((o, i) => {
      if (o !== "" && outs[i]) map.set(o, outs[i]);
    });
  }
  return map;
}

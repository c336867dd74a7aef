/**
 * Rematerialization: after the backward pass is appended, decides which forward values it keeps
 * and which it recomputes from kept ones, so that what stays in memory between the forward and
 * the backward pass is as small as possible.
 *
 * The backward pass reads forward values: a GroupNorm-then-SiLU block alone would keep its
 * input, the normalized values, the sigmoid and the SiLU output — four full-size tensors — where
 * its input and two per-group numbers suffice, everything else being a few elementwise passes
 * away. Which values to keep is a minimum cut (as in PyTorch's min-cut rematerialization
 * partitioner): every value is a node whose capacity is its size, values made by costly ops
 * (convolutions, matrix products) hang from the source, values the backward pass reads hang
 * from the sink, and cheap ops (elementwise, normalizations, views, reductions) connect their
 * inputs to their outputs. The cheapest set of values to keep is the cut; everything between it
 * and the backward pass is recomputed there, by copies of the forward nodes.
 *
 * Two things a runtime would otherwise undo. Common-subexpression elimination would merge each
 * copy with its forward original (same op, same inputs), and a depth-first execution order
 * (ONNX Runtime's default) would run copies that depend on forward values only as soon as those
 * exist — during the forward pass, holding them as before. So each copied chain reads a token
 * derived from the gradient arriving where the copy is first needed: a scalar +0 computed as
 * Cast(Less(g₀, g₀)) (false for every g₀, NaN included), subtracted from one small input of the
 * chain's first op. x − (+0) is x for every x (−0, ±∞ and NaN included), so the values, and the
 * gradient, are exactly those of the forward pass.
 *
 * @module
 */
import { GraphError } from "./errors.ts";
import { describeNode, type Graph, type Node, VIEW_OPS } from "./graph.ts";
import type { GraphBuilder } from "./graph_builder.ts";
import { inferNode, type ShapeContext, type ShapeMap } from "./shape_inference.ts";
import { FlowNetwork } from "./min_cut.ts";
import { DataType, ELEMENT_BYTES, isFloatType, sizeOf } from "./tensor.ts";

/** Options of {@link recomputeInBackward}. */
export interface RecomputeOptions {
  /**
   * Values holding the gradients the backward pass starts from (the VJP's seeds): the nodes
   * reading them, directly or not, are the backward pass.
   */
  seeds: string[];
  /** Shapes of the graph's values; completed in place with those of nodes added since. */
  shapes: ShapeMap;
}

/** What the rewrite kept and recomputed. */
export interface RecomputeResult {
  /** Bytes of the values (forward values, gradient-free helpers) the backward pass read before. */
  bytesBefore: number;
  /** Bytes of the forward values it keeps after the rewrite. */
  bytesAfter: number;
  /** Forward nodes copied into the backward pass. */
  copies: number;
}

/** Ops cheap enough to run again: linear in their output, no workspace, one output. */
const CHEAP = new Set([
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Neg",
  "Abs",
  "Sign",
  "Relu",
  "LeakyRelu",
  "Sigmoid",
  "Tanh",
  "Exp",
  "Log",
  "Sqrt",
  "Reciprocal",
  "Erf",
  "Pow",
  "Clip",
  "Cast",
  "Where",
  "Greater",
  "Less",
  "GreaterOrEqual",
  "LessOrEqual",
  "Equal",
  "And",
  "Not",
  "InstanceNormalization",
  "LayerNormalization",
  "ReduceMean",
  "ReduceSum",
  "Expand",
  "Transpose",
  "Reshape",
  "Squeeze",
  "Unsqueeze",
  "Flatten",
  "Identity",
]);

/** What recomputing a value costs, in bytes of memory per byte of output. */
const RECOMPUTE_CHARGE = 1 / 64;

/** The backward pass: the nodes reading a gradient, directly or not, and the values they make. */
function backwardPass(
  nodes: Node[],
  seeds: string[],
): { gradient: Set<string>; backward: Set<Node> } {
  const gradient = new Set(seeds);
  const backward = new Set<Node>();
  for (const n of nodes) {
    if (n.inputs.some((x) => gradient.has(x))) {
      backward.add(n);
      for (const o of n.outputs) gradient.add(o);
    }
  }
  return { gradient, backward };
}

/** What the analysis knows of the graph once the backward pass is appended. */
interface Pass {
  graph: Graph;
  shapes: ShapeMap;
  gradient: Set<string>;
  backward: Set<Node>;
  producer: Map<string, Node>;
  bytes: (x: string) => number;
}

/** Which forward values the backward pass recomputes, and the bytes kept before and after. */
interface Cut {
  recomputed: (x: string) => boolean;
  bytesBefore: number;
  bytesAfter: number;
}

/**
 * The minimum cut over the values the backward pass reads and everything they can be
 * recomputed from (see the module comment).
 */
function chooseCut(pass: Pass): Cut {
  const { graph, gradient, backward, producer, bytes } = pass;
  const nodes = graph.nodes;
  const constant = (x: string) => graph.initializers.has(x);
  // Graph inputs and outputs are held for the whole run anyway: keeping them costs nothing.
  const held = new Set([...graph.inputs, ...graph.outputs].map((v) => v.name));
  const read = new Set<string>();
  for (const n of backward) {
    for (const x of n.inputs) {
      if (x !== "" && !gradient.has(x) && !constant(x)) read.add(x);
    }
  }
  // The forward pass: the nodes before the first backward node (the VJP appends its nodes
  // after the graph's). The rest of the non-backward nodes are the rules' gradient-free
  // helpers (1 − y, …).
  const firstBackward = nodes.findIndex((n) => backward.has(n));
  const forward = new Set(firstBackward < 0 ? nodes : nodes.slice(0, firstBackward));
  const cheap = (n: Node | undefined) =>
    !!n && !backward.has(n) && CHEAP.has(n.opType) && (n.domain === "" || n.domain === "ai.onnx") &&
    n.outputs.filter((o) => o !== "").length === 1;
  const id = new Map<string, number>();
  const order: string[] = [];
  const visit = (x: string) => {
    if (id.has(x)) return;
    id.set(x, order.length);
    order.push(x);
    const p = producer.get(x);
    if (cheap(p)) { for (const i of p!.inputs) if (i !== "" && !constant(i)) visit(i); }
  };
  for (const x of read) visit(x);
  const source = 2 * order.length, sink = source + 1;
  const net = new FlowNetwork(sink + 1);
  for (const x of order) {
    const k = id.get(x)!;
    const p = producer.get(x);
    const isView = !!p && VIEW_OPS.has(p.opType);
    // Keeping a value costs its bytes. A view costs nothing of its own: keeping it keeps its
    // input. A helper is never kept: a runtime's depth-first order would run it only when the
    // backward pass first reads it, holding its forward inputs until then.
    const helper = !!p && !forward.has(p) && cheap(p);
    const keep = held.has(x) ? 0 : isView || helper ? Infinity : bytes(x);
    net.edge(2 * k, 2 * k + 1, keep);
    if (cheap(p)) {
      for (const i of p!.inputs) {
        if (i !== "" && !constant(i)) net.edge(2 * id.get(i)! + 1, 2 * k, Infinity);
      }
      // Recomputing costs time: a small charge per byte makes the cut keep a value rather than
      // recompute it when that saves little memory.
      if (!isView) net.edge(source, 2 * k, bytes(x) * RECOMPUTE_CHARGE);
    } else {
      net.edge(source, 2 * k, Infinity);
    }
    if (read.has(x)) net.edge(2 * k + 1, sink, Infinity);
  }
  const side = net.minCut(source, sink);
  const base = (x: string): string => {
    const p = producer.get(x);
    return p && VIEW_OPS.has(p.opType) && !constant(p.inputs[0]) ? base(p.inputs[0]) : x;
  };
  let bytesBefore = 0;
  for (const x of new Set([...read].map(base).filter((x) => !held.has(x) && !constant(x)))) {
    bytesBefore += bytes(x);
  }
  let bytesAfter = 0;
  for (const x of order) {
    const k = id.get(x)!;
    if (side[2 * k] && !side[2 * k + 1] && !held.has(x)) bytesAfter += bytes(x);
  }
  return { recomputed: (x) => id.has(x) && side[2 * id.get(x)!] === 0, bytesBefore, bytesAfter };
}

/**
 * Copies of the forward nodes that make recomputed values, made on first request and placed
 * just before the backward node that asks first; each copied chain reads a token derived from
 * that node's gradient (see the module comment).
 */
class Copies {
  readonly #b: GraphBuilder;
  readonly #pass: Pass;
  readonly #recomputed: (x: string) => boolean;
  readonly #copyOf = new Map<string, string>();
  readonly #tokened = new Set<string>();
  /** The nodes to place before each backward node. */
  readonly before = new Map<Node, Node[]>();
  count = 0;

  constructor(b: GraphBuilder, pass: Pass, recomputed: (x: string) => boolean) {
    this.#b = b;
    this.#pass = pass;
    this.#recomputed = recomputed;
  }

  /** Points the backward node `reader`'s inputs at copies of the recomputed values it reads. */
  rewire(reader: Node): void {
    if (!reader.inputs.some(this.#recomputed)) return;
    const list = this.before.get(reader) ?? [];
    this.before.set(reader, list);
    let z: string | undefined;
    const token = () => (z ??= this.#token(reader, list));
    reader.inputs = reader.inputs.map((x) =>
      x !== "" && this.#recomputed(x) ? this.#clone(x, list, token) : x
    );
  }

  #clone(x: string, list: Node[], token: () => string): string {
    const done = this.#copyOf.get(x);
    if (done) return done;
    const { shapes, producer, bytes } = this.#pass;
    const p = producer.get(x)!;
    const ins = p.inputs.map((
      i,
    ) => (i !== "" && this.#recomputed(i) ? this.#clone(i, list, token) : i));
    const out = this.#b.fresh(`${x}__recomputed`);
    // A view reads the token through its input; any other op not yet reading it gets it.
    if (ins.some((i) => this.#tokened.has(i))) this.#tokened.add(out);
    else if (!VIEW_OPS.has(p.opType)) {
      // Subtract the token from the smallest float input the op reads.
      let best = -1;
      ins.forEach((i, j) => {
        if (i === "" || !isFloatType(shapes.get(i)?.dtype ?? 0)) return;
        if (best < 0 || bytes(i) < bytes(ins[best])) best = j;
      });
      if (best >= 0) {
        const t = shapes.get(ins[best])!;
        const z = token();
        const zt = t.dtype === DataType.FLOAT
          ? z
          : this.#emit("Cast", [z], { to: t.dtype }, [], list);
        ins[best] = this.#emit("Sub", [ins[best], zt], {}, t.dims, list, t.dtype);
        this.#tokened.add(out);
      }
    }
    list.push({ ...p, name: this.#b.fresh(`${p.name}__recomputed`), inputs: ins, outputs: [out] });
    shapes.set(out, shapes.get(x)!);
    this.#copyOf.set(x, out);
    this.count++;
    return out;
  }

  /** A scalar +0 from the first value of the gradient `reader` reads: Cast(Less(g₀, g₀)). */
  #token(reader: Node, list: Node[]): string {
    const { shapes, gradient } = this.#pass;
    const g = reader.inputs.find((x) => gradient.has(x));
    if (!g) throw new GraphError(`${describeNode(reader)}: backward node reads no gradient`);
    // Only the token's own values need shapes here; a gradient's may be unknown.
    const gt = shapes.get(g) ?? { dims: [-1], dtype: DataType.FLOAT };
    const b = this.#b;
    const flat = this.#emit("Reshape", [g, b.int64s([-1])], {}, [sizeOf(gt.dims)], list, gt.dtype);
    const first = this.#emit(
      "Slice",
      [flat, b.int64s([0]), b.int64s([1]), b.int64s([0])],
      {},
      [1],
      list,
      gt.dtype,
    );
    const never = this.#emit("Less", [first, first], {}, [1], list, DataType.BOOL);
    const zero = this.#emit("Cast", [never], { to: DataType.FLOAT }, [1], list);
    return this.#emit("Reshape", [zero, b.int64s([])], {}, [], list);
  }

  #emit(
    opType: string,
    ins: string[],
    attrs: Record<string, number | number[]>,
    dims: number[],
    list: Node[],
    dtype: number = DataType.FLOAT,
  ): string {
    const graph = this.#b.graph;
    const before = graph.nodes.length;
    const out = this.#b.node(opType, ins, attrs, { name: `recompute_${opType}` });
    list.push(...graph.nodes.splice(before));
    this.#pass.shapes.set(out, { dims, dtype });
    return out;
  }
}

/**
 * Rewrites the builder's graph (forward nodes followed by the backward pass that reads the
 * `seeds`) so that the backward pass recomputes the forward values it can get more cheaply
 * than by keeping them. Values and gradient are unchanged.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * import { inferShapes } from "./shape_inference.ts";
 * import { appendVjp } from "./vjp.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [1, 4, 8, 8]);
 * const h = b.node("Sigmoid", [b.node("Sigmoid", [x])]);
 * b.output(h, 1, [1, 4, 8, 8]);
 * const seed = b.input("h_grad", 1, [1, 4, 8, 8]);
 * const shapes = inferShapes(b.graph, { x: [1, 4, 8, 8], h_grad: [1, 4, 8, 8] });
 * appendVjp(b, { seeds: { [h]: seed }, wrt: ["x"], shapes });
 * const r = recomputeInBackward(b, { seeds: [seed], shapes });
 * assert.ok(r.bytesAfter < r.bytesBefore); // the inner sigmoid is recomputed from x
 * assert.ok(r.copies > 0);
 * ```
 */
export function recomputeInBackward(
  b: GraphBuilder,
  { seeds, shapes }: RecomputeOptions,
): RecomputeResult {
  const graph = b.graph;
  const { gradient, backward } = backwardPass(graph.nodes, seeds);
  completeShapes(b, shapes, (n) => !backward.has(n));
  const producer = new Map<string, Node>();
  for (const n of graph.nodes) for (const o of n.outputs) if (o !== "") producer.set(o, n);
  const bytes = (x: string) => {
    const t = shapes.get(x)!;
    return sizeOf(t.dims) * (ELEMENT_BYTES[t.dtype] ?? 4);
  };
  const pass: Pass = { graph, shapes, gradient, backward, producer, bytes };
  const { recomputed, bytesBefore, bytesAfter } = chooseCut(pass);
  const copies = new Copies(b, pass, recomputed);
  const all = [...graph.nodes];
  for (const n of all) if (backward.has(n)) copies.rewire(n);
  graph.nodes = all.flatMap((n) => [...(copies.before.get(n) ?? []), n]);
  return { bytesBefore, bytesAfter, copies: copies.count };
}

/** Adds the shapes of the values `which` nodes added after shape inference make. */
function completeShapes(b: GraphBuilder, shapes: ShapeMap, which: (n: Node) => boolean): void {
  const graph = b.graph;
  for (const [k, t] of graph.initializers) {
    if (!shapes.has(k)) shapes.set(k, { dims: t.dims, dtype: t.dtype });
  }
  const ctx: ShapeContext = {
    shape: (name) => {
      const t = shapes.get(name);
      if (!t) throw new GraphError(`recompute: value "${name}" has no known shape`);
      return t.dims;
    },
    dtype: (name) => shapes.get(name)?.dtype ?? 0,
    value: (name) => graph.initializers.get(name),
    opset: graph.opset,
  };
  for (const n of graph.nodes) {
    if (!which(n) || n.outputs.every((o) => o === "" || shapes.has(o))) continue;
    const types = inferNode(ctx, n);
    n.outputs.forEach((o, i) => {
      if (o !== "" && types[i]) shapes.set(o, types[i]);
    });
  }
}

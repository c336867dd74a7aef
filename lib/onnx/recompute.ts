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
import { describeNode, type Node, VIEW_OPS } from "./graph.ts";
import type { GraphBuilder } from "./graph_builder.ts";
import { inferNode, type ShapeContext, type ShapeMap } from "./shape_inference.ts";
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

/** Max flow by Dinic's algorithm on a small graph with float capacities. */
class FlowNetwork {
  readonly #head: number[][];
  readonly #to: number[] = [];
  readonly #cap: number[] = [];

  constructor(nodes: number) {
    this.#head = Array.from({ length: nodes }, () => []);
  }

  edge(from: number, to: number, cap: number): void {
    this.#head[from].push(this.#to.length);
    this.#to.push(to);
    this.#cap.push(cap);
    this.#head[to].push(this.#to.length);
    this.#to.push(from);
    this.#cap.push(0);
  }

  #levels(source: number): Int32Array {
    const level = new Int32Array(this.#head.length).fill(-1);
    level[source] = 0;
    const queue = [source];
    for (let q = 0; q < queue.length; q++) {
      const u = queue[q];
      for (const e of this.#head[u]) {
        const v = this.#to[e];
        if (this.#cap[e] > 0 && level[v] < 0) {
          level[v] = level[u] + 1;
          queue.push(v);
        }
      }
    }
    return level;
  }

  /**
   * Runs max flow and returns, per node, whether it is on the source side of the minimum cut
   * nearest the sink (of several cuts of equal size, the one that recomputes least).
   */
  minCut(source: number, sink: number): Uint8Array {
    for (;;) {
      const level = this.#levels(source);
      if (level[sink] < 0) return this.#notReaching(sink);
      const next = new Int32Array(this.#head.length);
      for (;;) {
        const pushed = this.#push(source, sink, Infinity, level, next);
        if (pushed === 0) break;
        if (!Number.isFinite(pushed)) {
          throw new GraphError("recompute: the backward pass reads a value no cut can keep");
        }
      }
    }
  }

  /** Marks with 1 the nodes that cannot reach `sink` through edges with capacity left. */
  #notReaching(sink: number): Uint8Array {
    const side = new Uint8Array(this.#head.length).fill(1);
    side[sink] = 0;
    const queue = [sink];
    for (let q = 0; q < queue.length; q++) {
      for (const e of this.#head[queue[q]]) {
        const u = this.#to[e];
        if (side[u] && this.#cap[e ^ 1] > 0) {
          side[u] = 0;
          queue.push(u);
        }
      }
    }
    return side;
  }

  #push(u: number, sink: number, limit: number, level: Int32Array, next: Int32Array): number {
    if (u === sink) return limit;
    const edges = this.#head[u];
    for (; next[u] < edges.length; next[u]++) {
      const e = edges[next[u]];
      const v = this.#to[e];
      if (this.#cap[e] <= 0 || level[v] !== level[u] + 1) continue;
      const got = this.#push(v, sink, Math.min(limit, this.#cap[e]), level, next);
      if (got > 0) {
        this.#cap[e] -= got;
        this.#cap[e ^ 1] += got;
        return got;
      }
    }
    return 0;
  }
}

/**
 * Rewrites the builder's graph (forward nodes followed by the backward pass that reads the
 * `seeds`) so that the backward pass recomputes the forward values it can get more cheaply
 * than by keeping them. Values and gradient are unchanged.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "./graph_builder.ts";
 * import { inferShapes } from "./shape_inference.ts";
 * import { appendVjp } from "./vjp.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [1, 4, 8, 8]);
 * const h = b.node("Sigmoid", [b.node("Sigmoid", [x])]);
 * b.output(h, 1, [1, 4, 8, 8]);
 * const seed = b.input("h_grad", 1, [1, 4, 8, 8]);
 * const shapes = inferShapes(b.graph, { x: [1, 4, 8, 8], h_grad: [1, 4, 8, 8] });
 * const grads = appendVjp(b, { seeds: { [h]: seed }, wrt: ["x"], shapes });
 * const r = recomputeInBackward(b, { seeds: [seed], shapes });
 * r.bytesAfter < r.bytesBefore; // true: the sigmoids are recomputed from x
 * ```
 */
export function recomputeInBackward(
  b: GraphBuilder,
  { seeds, shapes }: RecomputeOptions,
): RecomputeResult {
  const graph = b.graph;
  const nodes = graph.nodes;
  const constant = (x: string) => graph.initializers.has(x);
  // Graph inputs and outputs are held for the whole run anyway: keeping them costs nothing.
  const held = new Set([...graph.inputs, ...graph.outputs].map((v) => v.name));
  const bytes = (x: string) => {
    const t = shapes.get(x)!;
    return sizeOf(t.dims) * (ELEMENT_BYTES[t.dtype] ?? 4);
  };
  // Backward nodes: those reading a gradient, directly or not.
  const gradient = new Set(seeds);
  const backward = new Set<Node>();
  for (const n of nodes) {
    if (n.inputs.some((x) => gradient.has(x))) {
      backward.add(n);
      for (const o of n.outputs) gradient.add(o);
    }
  }
  completeShapes(b, shapes, (n) => !backward.has(n));
  const producer = new Map<string, Node>();
  for (const n of nodes) for (const o of n.outputs) if (o !== "") producer.set(o, n);
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
  // The flow network over the read values and everything they can be recomputed from.
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
  const recomputed = (x: string) => id.has(x) && side[2 * id.get(x)!] === 0;
  const base = (x: string): string => {
    const p = producer.get(x);
    return p && VIEW_OPS.has(p.opType) && !constant(p.inputs[0]) ? base(p.inputs[0]) : x;
  };
  const bases = new Set([...read].map(base).filter((x) => !held.has(x) && !constant(x)));
  let bytesBefore = 0;
  for (const x of bases) bytesBefore += bytes(x);
  let bytesAfter = 0;
  for (const x of order) {
    const k = id.get(x)!;
    if (side[2 * k] && !side[2 * k + 1] && !held.has(x)) bytesAfter += bytes(x);
  }

  // Copies, made on first request, placed just before the backward node that asks first.
  const copyOf = new Map<string, string>();
  const tokened = new Set<string>();
  const before = new Map<Node, Node[]>();
  let copies = 0;
  const all = [...nodes];
  const cloneFor = (reader: Node, token: () => string) => {
    const list = before.get(reader) ?? [];
    before.set(reader, list);
    const clone = (x: string): string => {
      const done = copyOf.get(x);
      if (done) return done;
      const p = producer.get(x)!;
      const ins = p.inputs.map((i) => (i !== "" && recomputed(i) ? clone(i) : i));
      const out = b.fresh(`${x}__recomputed`);
      // A view reads the token through its input; any other op not yet reading it gets it.
      if (ins.some((i) => tokened.has(i))) tokened.add(out);
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
          const zt = t.dtype === DataType.FLOAT ? z : emit("Cast", [z], { to: t.dtype }, [], list);
          const shifted = emit("Sub", [ins[best], zt], {}, t.dims, list, t.dtype);
          ins[best] = shifted;
          tokened.add(out);
        }
      }
      list.push({ ...p, name: b.fresh(`${p.name}__recomputed`), inputs: ins, outputs: [out] });
      shapes.set(out, shapes.get(x)!);
      copyOf.set(x, out);
      copies++;
      return out;
    };
    return clone;
  };
  const emit = (
    opType: string,
    ins: string[],
    attrs: Record<string, number | number[]>,
    dims: number[],
    list: Node[],
    dtype: number = DataType.FLOAT,
  ): string => {
    const before = graph.nodes.length;
    const out = b.node(opType, ins, attrs, { name: `recompute_${opType}` });
    list.push(...graph.nodes.splice(before));
    shapes.set(out, { dims, dtype });
    return out;
  };
  for (const n of all) {
    if (!backward.has(n) || !n.inputs.some(recomputed)) continue;
    let z: string | undefined;
    const list = before.get(n) ?? [];
    const token = () => {
      if (z) return z;
      const g = n.inputs.find((x) => gradient.has(x));
      if (!g) throw new GraphError(`${describeNode(n)}: backward node reads no gradient`);
      // Only the token's own values need shapes here; a gradient's may be unknown.
      const gt = shapes.get(g) ?? { dims: [-1], dtype: DataType.FLOAT };
      const flat = emit("Reshape", [g, b.int64s([-1])], {}, [sizeOf(gt.dims)], list, gt.dtype);
      const first = emit(
        "Slice",
        [flat, b.int64s([0]), b.int64s([1]), b.int64s([0])],
        {},
        [1],
        list,
        gt.dtype,
      );
      const never = emit("Less", [first, first], {}, [1], list, DataType.BOOL);
      const zero = emit("Cast", [never], { to: DataType.FLOAT }, [1], list);
      z = emit("Reshape", [zero, b.int64s([])], {}, [], list);
      return z;
    };
    before.set(n, list);
    const clone = cloneFor(n, token);
    n.inputs = n.inputs.map((x) => (x !== "" && recomputed(x) ? clone(x) : x));
  }
  graph.nodes = all.flatMap((n) => [...(before.get(n) ?? []), n]);
  return { bytesBefore, bytesAfter, copies };
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

/**
 * How much memory one run of a graph takes on ONNX Runtime's CPU provider, estimated from its
 * tensor sizes before anything is allocated: a liveness analysis over the nodes in the order the
 * runtime executes them, then what the C allocator makes of those buffers.
 *
 * The runtime's buffers: a value is allocated when its node runs and freed after its last
 * reader; views (Reshape, Squeeze, Unsqueeze, Flatten, Identity) share their input's buffer; an
 * activation (Relu, Sigmoid…) writes over its input when it dies there; ConvTranspose expands
 * its input into a column buffer of Cout/group·∏kernel·∏input-spatial elements while it runs.
 * The execution order is ONNX Runtime's default: a depth-first walk back from the graph's last
 * nodes, visiting first the input made by the node that comes latest in the file.
 *
 * The allocator (glibc's malloc): blocks of 32 MiB and more are mapped on their own and given
 * back when freed; smaller ones come from a heap that reuses freed space and shrinks only when
 * 64 MiB are free at its top, so their high-water mark stays.
 *
 * What this leaves out, the runtime's own plans (it keeps some freed buffers for later values
 * of the same shape, its optimizer rewrites convolutions into a blocked layout) and a heap per
 * thread that ran a step, made measured peaks 0.94–1.5× the modelled one on the decoders tried
 * (SD-shaped and TAESD-shaped, tensors of 4–64 MiB); {@link RUNTIME_ALLOWANCE} covers the usual
 * part of that.
 *
 * @module
 */
import { describeNode, type Graph, type Node, VIEW_OPS } from "./graph.ts";
import type { ShapeMap } from "./shape_inference.ts";
import { HeapModel } from "./malloc_model.ts";
import { ELEMENT_BYTES, sizeOf } from "./tensor.ts";

/** A graph's memory cannot be estimated (a value without a known shape or element type). */
export class MemoryEstimateError extends Error {
  override readonly name = "MemoryEstimateError";
}

/** Options of {@link estimateMemory}. */
export interface MemoryEstimateOptions {
  /**
   * Node order to assume: `onnxruntime` (default) simulates the runtime's default execution
   * order; `graph` takes the nodes as listed.
   */
  order?: "onnxruntime" | "graph";
  /** How many of the largest values held at the peak to list (default 8). */
  top?: number;
}

/** The estimate: bytes held at the peak of one run, and what they are. */
export interface MemoryEstimate {
  /** Bytes of the initializers (weights and constants), held for the session's lifetime. */
  weightBytes: number;
  /** Bytes of the graph inputs, which the caller allocates and feeds. */
  inputBytes: number;
  /**
   * Bytes the process is expected to take above its baseline at the peak of a run: the modelled
   * peak ({@link MemoryEstimate.modelledBytes}) times {@link RUNTIME_ALLOWANCE}.
   */
  peakBytes: number;
  /**
   * Largest total the model holds at once during a run: the runtime's intermediate values,
   * outputs and kernel workspaces as the allocator holds them; not weights, not inputs.
   */
  modelledBytes: number;
  /** The node running when the peak is reached. */
  peakNode: string;
  /** Number of nodes run before the peak node (its position in the execution order). */
  peakStep: number;
  /** Number of nodes in the execution order. */
  steps: number;
  /** The largest values held at the peak, largest first. */
  live: { name: string; bytes: number }[];
}

/**
 * Measured peak over modelled peak, the usual part of it: 1.25 (measured 0.94–1.5×, see the
 * module comment).
 */
export const RUNTIME_ALLOWANCE = 1.25;

/**
 * Ops whose CPU kernels may write their output over their input when it dies there: the
 * activations (binary elementwise ops such as Add and Mul always allocate their output).
 */
const IN_PLACE = new Set([
  "Relu",
  "LeakyRelu",
  "Sigmoid",
  "Tanh",
  "Elu",
  "Selu",
  "HardSigmoid",
  "Softplus",
  "Softsign",
  "ThresholdedRelu",
]);

function bytesOf(shapes: ShapeMap, name: string, node: Node): number {
  const t = shapes.get(name);
  if (!t) {
    throw new MemoryEstimateError(`${describeNode(node)}: value "${name}" has no known shape`);
  }
  const per = ELEMENT_BYTES[t.dtype];
  if (per === undefined) {
    throw new MemoryEstimateError(
      `${describeNode(node)}: value "${name}" has element type ${t.dtype}, expected a numeric type`,
    );
  }
  return sizeOf(t.dims) * per;
}

/** Bytes a kernel allocates for itself while it runs: ConvTranspose's column buffer. */
function workspaceBytes(node: Node, shapes: ShapeMap): number {
  if (node.opType !== "ConvTranspose") return 0;
  const x = shapes.get(node.inputs[0])?.dims;
  const w = shapes.get(node.inputs[1])?.dims;
  const t = shapes.get(node.outputs[0]);
  if (!x || !w || !t) return 0;
  return w[1] * sizeOf(w.slice(2)) * sizeOf(x.slice(2)) * (ELEMENT_BYTES[t.dtype] ?? 4);
}

/**
 * The order in which ONNX Runtime runs a graph's nodes by default: a reverse depth-first walk
 * from the nodes whose outputs no node reads, visiting inputs made by later-listed nodes first,
 * each node emitted after all its producers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [2]);
 * b.output(b.node("Neg", [b.node("Relu", [x])]), 1, [2]);
 * assert.deepEqual(onnxRuntimeOrder(b.graph).map((n) => n.opType), ["Relu", "Neg"]);
 * ```
 */
export function onnxRuntimeOrder(graph: Graph): Node[] {
  const nodes = graph.nodes;
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.outputs.forEach((o) => o !== "" && producer.set(o, i)));
  const read = new Set<number>();
  const inputsOf = nodes.map((n) => {
    const ps = new Set<number>();
    for (const x of n.inputs) {
      const p = producer.get(x);
      if (p !== undefined) ps.add(p);
    }
    for (const p of ps) read.add(p);
    return [...ps].sort((a, b) => a - b);
  });
  const stack: [number, boolean][] = [];
  nodes.forEach((_, i) => {
    if (!read.has(i)) stack.push([i, false]);
  });
  const visited = new Uint8Array(nodes.length);
  const order: Node[] = [];
  while (stack.length > 0) {
    const [i, leave] = stack.pop()!;
    if (leave) {
      order.push(nodes[i]);
      continue;
    }
    if (visited[i]) continue;
    visited[i] = 1;
    stack.push([i, true]);
    for (const p of inputsOf[i]) stack.push([p, false]);
  }
  return order;
}

interface Buffer {
  bytes: number;
  /** Step at which it was allocated. */
  from: number;
  /** Step after which it is released (Infinity while held). */
  to: number;
  /** Values living in it that still have readers to come. */
  holders: number;
  /** Value names, for the report. */
  names: string[];
  /** Owned by the caller or the session (graph input, initializer): never counted. */
  external: boolean;
}

/**
 * The runtime's buffers over the run: made by their node, released after their last reader;
 * views share their input's buffer and activations may take over theirs. Also the bytes of
 * the graph's inputs and each step's kernel workspace.
 */
function buffersOfRun(
  graph: Graph,
  nodes: Node[],
  shapes: ShapeMap,
): { buffers: Buffer[]; workspace: Float64Array; inputBytes: number } {
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const remaining = new Map<string, number>();
  for (const n of nodes) {
    for (const x of n.inputs) if (x !== "") remaining.set(x, (remaining.get(x) ?? 0) + 1);
  }
  let inputBytes = 0;
  const bufferOf = new Map<string, Buffer>();
  const external = (name: string): Buffer => {
    let b = bufferOf.get(name);
    if (!b) {
      b = { bytes: 0, from: 0, to: Infinity, holders: 0, names: [name], external: true };
      bufferOf.set(name, b);
    }
    return b;
  };
  for (const v of graph.inputs) {
    const t = shapes.get(v.name);
    if (t) inputBytes += sizeOf(t.dims) * (ELEMENT_BYTES[t.dtype] ?? 4);
    external(v.name);
  }
  const buffers: Buffer[] = [];
  const workspace = new Float64Array(nodes.length);
  const retire = (b: Buffer, step: number) => {
    if (!b.external && b.holders === 0) b.to = step;
  };
  nodes.forEach((node, step) => {
    workspace[step] = workspaceBytes(node, shapes);
    node.outputs.forEach((o, i) => {
      if (o === "") return;
      const bytes = bytesOf(shapes, o, node);
      let buf: Buffer | undefined;
      if (i === 0 && VIEW_OPS.has(node.opType) && node.inputs[0]) {
        buf = bufferOf.get(node.inputs[0]) ?? external(node.inputs[0]);
      } else if (i === 0 && IN_PLACE.has(node.opType) && !outputs.has(o)) {
        const x = node.inputs[0];
        const b = bufferOf.get(x);
        if (b && !b.external && b.bytes === bytes && b.holders === 1 && remaining.get(x) === 1) {
          buf = b;
        }
      }
      if (!buf) {
        buf = { bytes, from: step, to: Infinity, holders: 0, names: [], external: false };
        buffers.push(buf);
      }
      buf.names.push(o);
      bufferOf.set(o, buf);
      if ((remaining.get(o) ?? 0) > 0 || outputs.has(o)) buf.holders++;
      else retire(buf, step);
    });
    for (const x of node.inputs) {
      if (x === "") continue;
      const left = (remaining.get(x) ?? 1) - 1;
      remaining.set(x, left);
      const b = bufferOf.get(x);
      if (left === 0 && b && !outputs.has(x)) {
        b.holders--;
        retire(b, step);
      }
    }
  });
  return { buffers, workspace, inputBytes };
}

/** What the process holds at each step, the allocator's view of the buffers: its peak. */
function heapPeak(buffers: Buffer[], workspace: Float64Array): { bytes: number; step: number } {
  const steps = workspace.length;
  const made: number[][] = Array.from({ length: steps }, () => []);
  const freed: number[][] = Array.from({ length: steps }, () => []);
  buffers.forEach((b, k) => {
    made[b.from].push(k);
    if (Number.isFinite(b.to)) freed[b.to].push(k);
  });
  const heap = new HeapModel();
  let bytes = 0, step = 0;
  const workspaceId = -1;
  for (let s = 0; s < steps; s++) {
    for (const k of made[s]) heap.allocate(k, buffers[k].bytes);
    if (workspace[s] > 0) heap.allocate(workspaceId, workspace[s]);
    const held = heap.mapped + heap.top;
    if (held > bytes) {
      bytes = held;
      step = s;
    }
    if (workspace[s] > 0) heap.release(workspaceId, workspace[s]);
    for (const k of freed[s]) heap.release(k, buffers[k].bytes);
  }
  return { bytes, step };
}

/**
 * Estimates the memory of one run of `graph` (all of whose values have shapes in `shapes`) on
 * ONNX Runtime's CPU provider without a memory arena or memory pattern.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * import { inferShapes } from "./shape_inference.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [1, 1024]);
 * const y = b.node("Sigmoid", [b.node("Exp", [x])]);
 * b.output(b.node("ReduceSum", [y], { keepdims: 0 }), 1, []);
 * const m = estimateMemory(b.graph, inferShapes(b.graph, { x: [1, 1024] }));
 * // Sigmoid writes over the output of Exp (4096 bytes), then 4 bytes of sum.
 * assert.equal(m.modelledBytes, 4100);
 * ```
 */
export function estimateMemory(
  graph: Graph,
  shapes: ShapeMap,
  { order = "onnxruntime", top = 8 }: MemoryEstimateOptions = {},
): MemoryEstimate {
  const nodes = order === "graph" ? graph.nodes : onnxRuntimeOrder(graph);
  let weightBytes = 0;
  for (const t of graph.initializers.values()) {
    weightBytes += sizeOf(t.dims) * (ELEMENT_BYTES[t.dtype] ?? 4);
  }
  const { buffers, workspace, inputBytes } = buffersOfRun(graph, nodes, shapes);
  const { bytes: modelledBytes, step: peakStep } = heapPeak(buffers, workspace);
  const live = buffers
    .filter((b) => b.from <= peakStep && b.to >= peakStep)
    .map((b) => ({ name: b.names.join(" → "), bytes: b.bytes }))
    .sort((a, b) => b.bytes - a.bytes);
  if (workspace[peakStep] > 0) {
    live.unshift({ name: `${nodes[peakStep].name} workspace`, bytes: workspace[peakStep] });
  }
  const used = live.reduce((a, l) => a + l.bytes, 0);
  if (modelledBytes > used) {
    live.unshift({ name: "free heap space kept by malloc", bytes: modelledBytes - used });
  }
  return {
    weightBytes,
    inputBytes,
    peakBytes: modelledBytes * RUNTIME_ALLOWANCE,
    modelledBytes,
    peakNode: nodes[peakStep]?.name ?? "",
    peakStep,
    steps: nodes.length,
    live: live.slice(0, top),
  };
}

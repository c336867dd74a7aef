/**
 * How much memory one run of a graph takes on ONNX Runtime's CPU provider, estimated from its
 * tensor sizes before anything is allocated: a liveness analysis over the nodes in the order the
 * runtime executes them, following its allocation planner closely enough to predict peak RSS.
 *
 * What the planner does, and so what the estimate models: a value is allocated when its node runs
 * and freed after its last reader; views (Reshape, Squeeze, Unsqueeze, Flatten, Identity) share
 * their input's buffer; an elementwise op writes over an input of its own size that dies there;
 * a freed buffer is handed to the next value of exactly its size (and stays allocated until
 * then); ConvTranspose expands its input into a column buffer of Cout·∏kernel·∏input-spatial
 * elements. The execution order is ONNX Runtime's default: a depth-first walk back from the
 * graph's last nodes, visiting first the input made by the node that comes latest in the file.
 *
 * @module
 */
import { GraphError } from "./errors.ts";
import { describeNode, type Graph, type Node } from "./graph.ts";
import type { ShapeMap } from "./shape_inference.ts";
import { DataType, sizeOf } from "./tensor.ts";

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
   * Largest total of tensor bytes the runtime holds at once during a run: intermediate values,
   * outputs and kernel workspaces; not weights, not inputs.
   */
  peakBytes: number;
  /** The node running when the peak is reached. */
  peakNode: string;
  /** Number of nodes run before the peak node (its position in the execution order). */
  peakStep: number;
  /** Number of nodes in the execution order. */
  steps: number;
  /** The largest values held at the peak, largest first. */
  live: { name: string; bytes: number }[];
}

const ELEMENT_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
};

/** Ops whose output is a view of their first input. */
const VIEWS = new Set(["Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"]);

/** Ops that may write their output over an input of the same size that dies at them. */
const IN_PLACE = new Set([
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Sum",
  "Neg",
  "Abs",
  "Relu",
  "LeakyRelu",
  "Sigmoid",
  "Tanh",
  "Exp",
  "Log",
  "Sqrt",
  "Reciprocal",
  "Erf",
  "Clip",
  "Where",
  "Cast",
]);

function bytesOf(shapes: ShapeMap, name: string, node: Node): number {
  const t = shapes.get(name);
  if (!t) throw new GraphError(`${describeNode(node)}: value "${name}" has no known shape`);
  const per = ELEMENT_BYTES[t.dtype];
  if (per === undefined) {
    throw new GraphError(
      `${describeNode(node)}: value "${name}" has unknown element type ${t.dtype}`,
    );
  }
  return sizeOf(t.dims) * per;
}

/** Bytes a kernel allocates for itself while it runs (only ConvTranspose's is large). */
function workspaceBytes(node: Node, shapes: ShapeMap): number {
  if (node.opType !== "ConvTranspose") return 0;
  const x = shapes.get(node.inputs[0])?.dims;
  const w = shapes.get(node.inputs[1])?.dims;
  const t = shapes.get(node.outputs[0]);
  if (!x || !w || !t) return 0;
  // Column buffer: (Cout/group · ∏kernel) × ∏input-spatial, allocated once for the whole batch.
  return w[1] * sizeOf(w.slice(2)) * sizeOf(x.slice(2)) * (ELEMENT_BYTES[t.dtype] ?? 4);
}

/**
 * The order in which ONNX Runtime runs a graph's nodes by default: a reverse depth-first walk
 * from the nodes whose outputs no node reads, visiting inputs made by later-listed nodes first,
 * each node emitted after all its producers.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [2]);
 * b.output(b.node("Neg", [b.node("Relu", [x])]), 1, [2]);
 * onnxRuntimeOrder(b.graph).map((n) => n.opType); // ["Relu", "Neg"]
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
  /** Freed into the reuse list at this step (-1 while in use). */
  freedAt: number;
}

/**
 * Estimates the memory of one run of `graph` (all of whose values have shapes in `shapes`) on
 * ONNX Runtime's CPU provider without a memory arena or memory pattern.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "./graph_builder.ts";
 * import { inferShapes } from "./shape_inference.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [1, 1024]);
 * b.output(b.node("Neg", [b.node("Exp", [x])]), 1, [1, 1024]);
 * const m = estimateMemory(b.graph, inferShapes(b.graph, { x: [1, 1024] }));
 * m.peakBytes; // 4096: Neg writes over Exp's output
 * ```
 */
export function estimateMemory(
  graph: Graph,
  shapes: ShapeMap,
  { order = "onnxruntime", top = 8 }: MemoryEstimateOptions = {},
): MemoryEstimate {
  const nodes = order === "graph" ? graph.nodes : onnxRuntimeOrder(graph);
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const remaining = new Map<string, number>();
  for (const n of nodes) {
    for (const x of n.inputs) if (x !== "") remaining.set(x, (remaining.get(x) ?? 0) + 1);
  }
  let weightBytes = 0;
  for (const t of graph.initializers.values()) {
    weightBytes += sizeOf(t.dims) * (ELEMENT_BYTES[t.dtype] ?? 4);
  }
  let inputBytes = 0;
  const bufferOf = new Map<string, Buffer>();
  const external = (name: string): Buffer => {
    let b = bufferOf.get(name);
    if (!b) {
      b = {
        bytes: 0,
        from: 0,
        to: Infinity,
        holders: 0,
        names: [name],
        external: true,
        freedAt: -1,
      };
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
  const freeList: Buffer[] = [];
  const workspace = new Float64Array(nodes.length);
  const retire = (b: Buffer, step: number) => {
    if (b.external || b.holders > 0) return;
    b.freedAt = step;
    b.to = step;
    freeList.unshift(b);
  };
  nodes.forEach((node, step) => {
    workspace[step] = workspaceBytes(node, shapes);
    const dying = (x: string) => remaining.get(x) === 1 && !outputs.has(x);
    node.outputs.forEach((o, i) => {
      if (o === "") return;
      const bytes = bytesOf(shapes, o, node);
      let buf: Buffer | undefined;
      if (i === 0 && VIEWS.has(node.opType) && node.inputs[0]) {
        buf = bufferOf.get(node.inputs[0]) ?? external(node.inputs[0]);
      } else if (i === 0 && IN_PLACE.has(node.opType) && !outputs.has(o)) {
        for (const x of node.inputs) {
          const b = bufferOf.get(x);
          if (b && !b.external && b.bytes === bytes && b.holders === 1 && dying(x)) {
            buf = b;
            break;
          }
        }
      }
      if (!buf && !outputs.has(o)) {
        const k = freeList.findIndex((b) => b.bytes === bytes);
        if (k >= 0) {
          buf = freeList.splice(k, 1)[0];
          buf.to = Infinity;
          buf.freedAt = -1;
        }
      }
      if (!buf) {
        buf = {
          bytes,
          from: step,
          to: Infinity,
          holders: 0,
          names: [],
          external: false,
          freedAt: -1,
        };
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
  // Held bytes per step: +bytes at `from`, −bytes after `to`.
  const delta = new Float64Array(nodes.length + 1);
  for (const b of buffers) {
    delta[b.from] += b.bytes;
    if (Number.isFinite(b.to)) delta[b.to + 1] -= b.bytes;
  }
  let held = 0, peakBytes = 0, peakStep = 0;
  for (let s = 0; s < nodes.length; s++) {
    held += delta[s];
    if (held + workspace[s] > peakBytes) {
      peakBytes = held + workspace[s];
      peakStep = s;
    }
  }
  const live = buffers
    .filter((b) => b.from <= peakStep && b.to >= peakStep)
    .map((b) => ({ name: b.names.join(" → "), bytes: b.bytes }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, top);
  if (workspace[peakStep] > 0) {
    live.unshift({ name: `${nodes[peakStep].name} workspace`, bytes: workspace[peakStep] });
  }
  return {
    weightBytes,
    inputBytes,
    peakBytes,
    peakNode: nodes[peakStep]?.name ?? "",
    peakStep,
    steps: nodes.length,
    live,
  };
}

/**
 * Counts the floating-point operations of an ONNX graph at fixed input shapes, for estimating
 * how long a model takes on hardware that is not here (a GPU) from its throughput. Only the
 * operators that dominate a VAE are counted — convolutions, transposed convolutions, matrix
 * products — at two operations per multiply-add; normalisations and element-wise operators
 * are left out (a few percent of a VAE's work).
 *
 * @module
 */
import { foldGraph } from "../lib/onnx/fold.ts";
import { attrInt, type Graph } from "../lib/onnx/graph.ts";

/** Operations of a graph, in total and by operator type. */
export interface FlopCount {
  total: number;
  byOp: Record<string, number>;
}

/**
 * The FLOPs of one evaluation of `graph` with the given input shapes. The graph is folded at
 * those shapes first (as latentforge runs it), so shapes computed inside it are known.
 *
 * @example
 * ```ts
 * import { GraphBuilder } from "../lib/onnx/graph_builder.ts";
 * import { DataType } from "../lib/onnx/tensor.ts";
 * const b = new GraphBuilder({ opset: 17 });
 * const x = b.input("x", DataType.FLOAT, [1, 3, 8, 8]);
 * const w = b.initializer({ dtype: DataType.FLOAT, dims: [4, 3, 3, 3], data: new Float32Array(108) });
 * b.output(b.node("Conv", [x, w], { pads: [1, 1, 1, 1] }), DataType.FLOAT, [1, 4, 8, 8]);
 * countFlops(b.graph, { x: [1, 3, 8, 8] }).total; // 2·4·8·8·3·3·3 = 13,824
 * ```
 */
export function countFlops(graph: Graph, inputShapes: Record<string, number[]>): FlopCount {
  const { graph: folded, shapes } = foldGraph(graph, { inputShapes });
  const dims = (name: string) => shapes.get(name)?.dims ?? [];
  const product = (xs: number[]) => xs.reduce((a, b) => a * b, 1);
  const byOp: Record<string, number> = {};
  for (const node of folded.nodes) {
    let flops = 0;
    if (node.opType === "Conv") {
      const out = dims(node.outputs[0]);
      const w = dims(node.inputs[1]);
      // Weight [Cout, Cin/group, kH, kW]: every output value is one dot product over it.
      flops = 2 * product(out) * product(w.slice(1));
    } else if (node.opType === "ConvTranspose") {
      const input = dims(node.inputs[0]);
      const w = dims(node.inputs[1]);
      // Weight [Cin, Cout/group, kH, kW]: every input value is spread over a kernel per output
      // channel of its group.
      flops = 2 * product(input) * product(w.slice(1));
    } else if (node.opType === "MatMul") {
      const a = dims(node.inputs[0]);
      const out = dims(node.outputs[0]);
      flops = 2 * product(out) * a[a.length - 1];
    } else if (node.opType === "Gemm") {
      const a = dims(node.inputs[0]);
      const out = dims(node.outputs[0]);
      flops = 2 * product(out) * (attrInt(node, "transA", 0) ? a[0] : a[a.length - 1]);
    }
    if (flops > 0) byOp[node.opType] = (byOp[node.opType] ?? 0) + flops;
  }
  return { total: Object.values(byOp).reduce((a, b) => a + b, 0), byOp };
}

/**
 * Rewrites "nearest 2× upsampling, then a same-padded stride-1 convolution" into one stride-2
 * ConvTranspose with a (k+1)×(k+1) kernel. Both compute the same values, but the fused form
 * does 16 instead of 36 multiply-adds per input pixel for a 3×3 kernel, and its input gradient
 * is a stride-2 Conv on the low-resolution side instead of a full-resolution Conv followed by a
 * 2×2 block sum. Decoders upsample this way (SD VAE, TAESD), so the forward and the backward
 * pass both get cheaper.
 *
 * @module
 */
import { ShapeError, UnsupportedOpError } from "./errors.ts";
import { attrInt, attrInts, attrString, type Graph, type Node } from "./graph.ts";
import { resizeTaps } from "./resize_taps.ts";
import { resizeParams } from "./op_params.ts";
import { type ShapeContext, type ShapeMap } from "./shape_inference.ts";
import { allocData, type HostTensor } from "./tensor.ts";

function isBlockUpsample2x(node: Node, graph: Graph, shapes: ShapeMap): boolean {
  if (node.opType !== "Resize" || attrString(node, "mode", "nearest") !== "nearest") return false;
  const dims = shapes.get(node.inputs[0])?.dims;
  if (!dims || dims.length !== 4) return false;
  const ctx: ShapeContext = {
    shape: (n) => shapes.get(n)!.dims,
    dtype: (n) => shapes.get(n)!.dtype,
    value: (n) => graph.initializers.get(n),
    opset: graph.opset,
  };
  let params;
  try {
    params = resizeParams(ctx, node, dims);
  } catch (e) {
    // Scales or sizes that are computed, not constant: not a fixed 2× upsampling, left alone.
    if (e instanceof ShapeError) return false;
    throw e;
  }
  const { out, scales } = params;
  if (out[0] !== dims[0] || out[1] !== dims[1]) return false;
  for (const a of [2, 3]) {
    if (out[a] !== 2 * dims[a]) return false;
    let taps;
    try {
      taps = resizeTaps(node, graph.opset, dims[a], out[a], scales[a]);
    } catch (e) {
      // A coordinate or rounding mode without taps: left alone (the gradient rule says why).
      if (e instanceof UnsupportedOpError) return false;
      throw e;
    }
    if (!taps.every((t, o) => t.length === 1 && t[0][0] === Math.floor(o / 2))) return false;
  }
  return true;
}

/** The ConvTranspose kernel [Cin, Cout, kh+1, kw+1] equivalent to upsample-then-conv. */
function fusedKernel(w: HostTensor, pads: number[]): HostTensor {
  const [co, ci, kh, kw] = w.dims;
  const mh = kh + 1, mw = kw + 1;
  const data = allocData(w.dtype, ci * co * mh * mw);
  const taps = (m: number, p: number, k: number) =>
    [2 * p - m, 2 * p - m + 1].filter((t) => t >= 0 && t < k);
  for (let o = 0; o < co; o++) {
    for (let i = 0; i < ci; i++) {
      for (let a = 0; a < mh; a++) {
        for (let b = 0; b < mw; b++) {
          let s = 0;
          for (const th of taps(a, pads[0], kh)) {
            for (const tw of taps(b, pads[1], kw)) s += w.data[((o * ci + i) * kh + th) * kw + tw];
          }
          data[((i * co + o) * mh + a) * mw + b] = s;
        }
      }
    }
  }
  return { dtype: w.dtype, dims: [ci, co, mh, mw], data };
}

/**
 * Fuses every eligible Resize → Conv pair in place and returns how many were fused. Eligible:
 * the Resize is a nearest 2× block upsampling of H and W whose output feeds only that Conv;
 * the Conv has constant weights, group 1, stride 1, dilation 1 and "same" pads (k = 2p + 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { foldGraph } from "./fold.ts";
 * import { GraphBuilder } from "./graph_builder.ts";
 * // A tiny decoder: nearest 2× upsampling, a 3×3 convolution to 3 channels, tanh.
 * const b = new GraphBuilder();
 * const latent = b.input("latent_sample", 1, ["n", 4, "h", "w"]);
 * const up = b.node("Resize", [latent, "", b.constant(1, [4], [1, 1, 2, 2])]);
 * const w = b.constant(1, [3, 4, 3, 3], Array.from({ length: 108 }, (_, i) => Math.sin(i) / 6));
 * const sample = b.node("Tanh", [b.node("Conv", [up, w], { pads: [1, 1, 1, 1] })]);
 * b.output(sample, 1, ["n", 3, "2h", "2w"]);
 * const { graph, shapes } = foldGraph(b.graph, { inputShapes: { latent_sample: [1, 4, 8, 8] } });
 * assert.equal(fuseUpsampleConv(graph, shapes), 1);
 * assert.deepEqual(graph.nodes.map((n) => n.opType), ["ConvTranspose", "Tanh"]);
 * ```
 */
export function fuseUpsampleConv(graph: Graph, shapes: ShapeMap): number {
  const producer = new Map<string, Node>();
  const uses = new Map<string, number>();
  for (const n of graph.nodes) {
    for (const o of n.outputs) producer.set(o, n);
    for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);
  }
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const removed = new Set<Node>();
  let fused = 0;
  for (const conv of graph.nodes) {
    if (conv.opType !== "Conv") continue;
    const [x, wName, bias] = conv.inputs;
    const up = producer.get(x);
    const w = graph.initializers.get(wName);
    if (!up || !w || w.dims.length !== 4 || uses.get(x) !== 1 || outputs.has(x)) continue;
    const [, , kh, kw] = w.dims;
    const pads = attrInts(conv, "pads", [0, 0, 0, 0])!;
    const ok = attrInt(conv, "group", 1) === 1 &&
      (attrInts(conv, "strides", [1, 1])!).every((s) => s === 1) &&
      (attrInts(conv, "dilations", [1, 1])!).every((d) => d === 1) &&
      attrString(conv, "auto_pad", "NOTSET") === "NOTSET" &&
      kh === 2 * pads[0] + 1 && kw === 2 * pads[1] + 1 && pads[2] === pads[0] &&
      pads[3] === pads[1];
    if (!ok || !isBlockUpsample2x(up, graph, shapes)) continue;
    const kernelName = `${wName}__upsample_fused`;
    graph.initializers.set(kernelName, fusedKernel(w, pads));
    shapes.set(kernelName, { dims: [w.dims[1], w.dims[0], kh + 1, kw + 1], dtype: w.dtype });
    conv.opType = "ConvTranspose";
    conv.inputs = [up.inputs[0], kernelName, ...(bias ? [bias] : [])];
    conv.attrs = {
      kernel_shape: { type: "ints", value: [kh + 1, kw + 1] },
      strides: { type: "ints", value: [2, 2] },
      pads: { type: "ints", value: [pads[0], pads[1], pads[0], pads[1]] },
    };
    removed.add(up);
    fused++;
  }
  graph.nodes = graph.nodes.filter((n) => !removed.has(n));
  return fused;
}

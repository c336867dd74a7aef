/**
 * Builds, from a decoder (latent → image) and a per-image loss, one ONNX graph that computes
 * the loss of each image and the gradient of the summed loss with respect to the latent.
 *
 * @module
 */
import { GraphError, ShapeError, UnsupportedOpError } from "./errors.ts";
import { type Graph, graphFromModel, type ModelProto, type ValueInfo } from "./graph.ts";
import { GraphBuilder } from "./graph_builder.ts";
import { decodeModel, encodeModel, readModel } from "./model_io.ts";
import { type FoldedGraph, foldGraph, pruneGraph } from "./fold.ts";
import { fuseUpsampleConv } from "./fuse_upsample_conv.ts";
import { recomputeInBackward } from "./recompute.ts";
import { estimateMemory, type MemoryEstimate, MemoryEstimateError } from "./memory_estimate.ts";
import { inferShapes, type ShapeMap } from "./shape_inference.ts";
import { isFloatType, sizeOf } from "./tensor.ts";
import { appendVjp } from "./vjp.ts";

/** Per-image losses on the unclamped decoder output. */
export type LossKind = "l2" | "l1" | "charbonnier";

/** Options of {@link buildLossAndGradient}. */
export interface LossGradientOptions {
  /** Images per evaluation (fixed in the built graph). */
  batch: number;
  /** Latent shape without the batch dim, e.g. [4, 32, 32]. */
  latentShape: number[];
  /**
   * Loss per image, a mean over channels and pixels of: `l2` (d²), `l1` (|d|) or `charbonnier`
   * (√(d² + ε²)), where d = reconstruction − target. Default `l2`.
   */
  loss?: LossKind;
  /** ε of the Charbonnier loss (default 1e-3). */
  charbonnierEps?: number;
  /** Also output the reconstruction (default false). */
  withReconstruction?: boolean;
  /**
   * Rewrite nearest-2× upsampling followed by a "same" convolution as one stride-2
   * ConvTranspose (same values, less work forward and backward). Default true.
   */
  fuseUpsampleConv?: boolean;
  /** Take a per-pixel weight input of shape [batch, 1, H, W] multiplying the loss terms (default false). */
  withWeight?: boolean;
  /**
   * Recompute cheap forward values (normalizations, activations) in the backward pass instead
   * of keeping them from the forward pass (see `recompute.ts`). Default true.
   */
  recompute?: boolean;
}

/** The built graph and the names of its inputs and outputs. */
export interface LossGradientGraph {
  /** Serialized ONNX model. */
  bytes: Uint8Array;
  inputs: { latent: string; target: string; weight?: string };
  outputs: { loss: string; gradient: string; reconstruction?: string };
  /** [batch, ...latentShape]. */
  latentDims: number[];
  /** Shape of the target / reconstruction, [batch, C, H, W]. */
  imageDims: number[];
  /**
   * ONNX Runtime session options the graph should run with (pass them as `extra` to
   * `openSession`). No memory pattern: the runtime would size one block per run from the first
   * run's allocations, which for a graph holding activations of very different lifetimes came to
   * 1.6× the tensors actually live at the peak on the SD-shaped decoder.
   */
  sessionOptions: { enableMemPattern: boolean };
}

/** See {@link LossGradientGraph.sessionOptions}. */
const SESSION_OPTIONS = { enableMemPattern: false };

const NAMES = ["latent", "target", "weight", "loss", "latent_grad", "reconstruction"];

/** Renames every occurrence of value `from` to `to` in the graph. */
function renameValue(g: Graph, from: string, to: string): void {
  for (const n of g.nodes) {
    n.inputs = n.inputs.map((x) => (x === from ? to : x));
    n.outputs = n.outputs.map((x) => (x === from ? to : x));
  }
  for (const v of [...g.inputs, ...g.outputs]) if (v.name === from) v.name = to;
  const t = g.initializers.get(from);
  if (t) {
    g.initializers.delete(from);
    g.initializers.set(to, t);
  }
}

async function toGraph(decoder: Uint8Array | ModelProto | Graph | string): Promise<Graph> {
  if (typeof decoder === "string") return graphFromModel(await readModel(decoder));
  if (decoder instanceof Uint8Array) return graphFromModel(decodeModel(decoder));
  if ("nodes" in decoder) return decoder;
  return graphFromModel(decoder);
}

/**
 * Builds the loss-and-gradient graph for a decoder. Inputs: `latent` [batch, ...latentShape],
 * `target` [batch, C, H, W], optionally `weight` [batch, 1, H, W]. Outputs: `loss` [batch],
 * `latent_grad` (gradient of the summed loss, shaped like the latent), optionally
 * `reconstruction`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as ort from "onnxruntime-node";
 * import { openSession } from "./session.ts";
 * import { GraphBuilder } from "./graph_builder.ts";
 * // A tiny decoder: nearest 2× upsampling, a 3×3 convolution to 3 channels, tanh.
 * const b = new GraphBuilder();
 * const latent = b.input("latent_sample", 1, ["n", 4, "h", "w"]);
 * const up = b.node("Resize", [latent, "", b.constant(1, [4], [1, 1, 2, 2])]);
 * const w = b.constant(1, [3, 4, 3, 3], Array.from({ length: 108 }, (_, i) => Math.sin(i) / 6));
 * const sample = b.node("Tanh", [b.node("Conv", [up, w], { pads: [1, 1, 1, 1] })]);
 * b.output(sample, 1, ["n", 3, "2h", "2w"]);
 * const built = await buildLossAndGradient(b.graph, {
 *   batch: 2,
 *   latentShape: [4, 8, 8],
 *   loss: "l2",
 * });
 * assert.deepEqual(built.imageDims, [2, 3, 16, 16]);
 * const { session } = await openSession(built.bytes, { providers: ["cpu"], extra: built.sessionOptions });
 * const out = await session.run({
 *   [built.inputs.latent]: new ort.Tensor("float32", new Float32Array(2 * 256), built.latentDims),
 *   [built.inputs.target]: new ort.Tensor("float32", new Float32Array(2 * 768), built.imageDims),
 * });
 * // A zero latent decodes to tanh(0) = 0, the target: no loss.
 * assert.deepEqual([...out[built.outputs.loss].data], [0, 0]);
 * await session.release();
 * ```
 */
export async function buildLossAndGradient(
  decoder: Uint8Array | ModelProto | Graph | string,
  options: LossGradientOptions,
): Promise<LossGradientGraph> {
  const { graph, ...built } = lossGradientGraph(await toGraph(decoder), options);
  return { bytes: encodeModel(graph), ...built, sessionOptions: { ...SESSION_OPTIONS } };
}

/**
 * Estimates, without building a session, the memory ONNX Runtime's CPU provider takes to run
 * the loss-and-gradient graph {@link buildLossAndGradient} builds with the same options (see
 * `memory_estimate.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * // A tiny decoder: nearest 2× upsampling, a 3×3 convolution to 3 channels, tanh.
 * const b = new GraphBuilder();
 * const latent = b.input("latent_sample", 1, ["n", 4, "h", "w"]);
 * const up = b.node("Resize", [latent, "", b.constant(1, [4], [1, 1, 2, 2])]);
 * const w = b.constant(1, [3, 4, 3, 3], Array.from({ length: 108 }, (_, i) => Math.sin(i) / 6));
 * const sample = b.node("Tanh", [b.node("Conv", [up, w], { pads: [1, 1, 1, 1] })]);
 * b.output(sample, 1, ["n", 3, "2h", "2w"]);
 * const m = await estimateLossAndGradient(b.graph, { batch: 4, latentShape: [4, 32, 32] });
 * const twice = await estimateLossAndGradient(b.graph, { batch: 8, latentShape: [4, 32, 32] });
 * assert.ok(m.peakBytes > 0 && twice.peakBytes > 1.5 * m.peakBytes); // activations grow with it
 * ```
 */
export async function estimateLossAndGradient(
  decoder: Uint8Array | ModelProto | Graph | string,
  options: LossGradientOptions,
): Promise<MemoryEstimate> {
  const { graph, inputs, latentDims, imageDims } = lossGradientGraph(
    await toGraph(decoder),
    options,
  );
  const inputShapes: Record<string, number[]> = {
    [inputs.latent]: latentDims,
    [inputs.target]: imageDims,
  };
  if (inputs.weight) inputShapes[inputs.weight] = [imageDims[0], 1, imageDims[2], imageDims[3]];
  let shapes;
  try {
    shapes = inferShapes(graph, inputShapes);
  } catch (e) {
    // A value whose shape cannot be inferred is one whose memory cannot be estimated.
    if (e instanceof ShapeError || e instanceof UnsupportedOpError) {
      throw new MemoryEstimateError(`the loss-and-gradient graph: ${e.message}`);
    }
    throw e;
  }
  return estimateMemory(graph, shapes);
}

/** The decoder's one input, checked against the requested latent. */
function decoderInput(source: Graph, latentDims: number[]): ValueInfo {
  if (source.inputs.length !== 1 || source.outputs.length !== 1) {
    throw new GraphError(
      `decoder must have one input and one output, found inputs [${
        source.inputs.map((v) => v.name)
      }] and outputs [${source.outputs.map((v) => v.name)}]`,
    );
  }
  if (source.opset < 13) {
    throw new GraphError(`decoder opset ${source.opset} is below 13, the lowest supported`);
  }
  const input = { ...source.inputs[0] };
  if (!isFloatType(input.dtype)) {
    throw new ShapeError(
      `decoder input "${input.name}" has element type ${input.dtype}, expected a float type`,
    );
  }
  const declared = input.dims;
  const mismatch = declared.length !== latentDims.length ||
    declared.some((d, i) => typeof d === "number" && d > 0 && d !== latentDims[i]);
  if (mismatch) {
    throw new ShapeError(
      `decoder input "${input.name}": expected shape [${
        declared.join(", ")
      }], found requested latent [${latentDims.join(", ")}]`,
    );
  }
  return input;
}

/** The decoder folded for the latent's shape; a shape it cannot take is said in those terms. */
function foldDecoder(source: Graph, input: string, latentDims: number[]): FoldedGraph {
  try {
    return foldGraph(source, { inputShapes: { [input]: latentDims } });
  } catch (e) {
    if (e instanceof ShapeError) {
      throw new ShapeError(
        `decoder cannot take a latent of shape [${latentDims.join(", ")}]: ${e.message}`,
      );
    }
    throw e;
  }
}

/** Renames the decoder's input to `latent` and its output to `reconstruction`. */
function nameInterface(graph: Graph, shapes: ShapeMap, input: string, output: string): void {
  // Free the fixed names before using them for the graph's interface.
  for (const name of NAMES) {
    if (name !== input && name !== output && shapes.has(name)) {
      const fresh = `${name}__decoder`;
      renameValue(graph, name, fresh);
      shapes.set(fresh, shapes.get(name)!);
    }
  }
  renameValue(graph, input, "latent");
  shapes.set("latent", shapes.get(input)!);
  renameValue(graph, output, "reconstruction");
  shapes.set("reconstruction", shapes.get(output)!);
}

/** The per-pixel loss term of d = reconstruction − target, and its derivative over a mean. */
function lossTerms(
  b: GraphBuilder,
  d: string,
  { loss, charbonnierEps, perImage, ft }: {
    loss: LossKind;
    charbonnierEps: number;
    perImage: number;
    ft: number;
  },
): { term: string; dterm: string } {
  switch (loss) {
    case "l2":
      return {
        term: b.node("Mul", [d, d]),
        dterm: b.node("Mul", [d, b.scalar(2 / perImage, ft)]),
      };
    case "l1":
      return {
        term: b.node("Abs", [d]),
        dterm: b.node("Mul", [b.node("Sign", [d]), b.scalar(1 / perImage, ft)]),
      };
    case "charbonnier": {
      const eps2 = b.scalar(charbonnierEps * charbonnierEps, ft);
      const term = b.node("Sqrt", [b.node("Add", [b.node("Mul", [d, d]), eps2])]);
      return { term, dterm: b.node("Div", [b.node("Mul", [d, b.scalar(1 / perImage, ft)]), term]) };
    }
    default:
      throw new GraphError(`unknown loss "${loss}", expected l2, l1 or charbonnier`);
  }
}

/** Each image's mean of `term` over channels and pixels, as the graph's `loss`. */
function meanPerImage(b: GraphBuilder, term: string): string {
  const lossValue = b.node("ReduceMean", [term], { axes: [1, 2, 3], keepdims: 0 }, {
    outputs: ["loss"],
  });
  if (b.opset >= 18) {
    // From opset 18 the axes of ReduceMean are an input.
    const n = b.graph.nodes[b.graph.nodes.length - 1];
    n.attrs = { keepdims: { type: "int", value: 0 } };
    n.inputs.push(b.int64s([1, 2, 3]));
  }
  return lossValue;
}

function lossGradientGraph(
  source: Graph,
  {
    batch,
    latentShape,
    loss = "l2",
    charbonnierEps = 1e-3,
    withReconstruction = false,
    withWeight = false,
    fuseUpsampleConv: fuse = true,
    recompute = true,
  }: LossGradientOptions,
): Omit<LossGradientGraph, "bytes" | "sessionOptions"> & { graph: Graph } {
  const latentDims = [batch, ...latentShape];
  const input = decoderInput(source, latentDims);
  const { graph, shapes } = foldDecoder(source, input.name, latentDims);
  if (fuse) fuseUpsampleConv(graph, shapes);
  const outName = graph.outputs[0].name;
  const out = shapes.get(outName)!;
  const imageDims = out.dims;
  if (imageDims.length !== 4 || imageDims[0] !== batch) {
    throw new ShapeError(
      `decoder output "${outName}": expected shape [${batch}, C, H, W], found [${
        imageDims.join(", ")
      }]`,
    );
  }
  nameInterface(graph, shapes, input.name, outName);
  graph.inputs = [{ name: "latent", dtype: input.dtype, dims: latentDims }];
  graph.outputs = [];
  const b = new GraphBuilder({ graph });
  const ft = out.dtype;
  const target = b.input("target", ft, imageDims);
  shapes.set(target, { dims: imageDims, dtype: ft });
  const weightDims = [batch, 1, imageDims[2], imageDims[3]];
  const weight = withWeight ? b.input("weight", ft, weightDims) : undefined;
  if (weight) shapes.set(weight, { dims: weightDims, dtype: ft });
  const y = "reconstruction";
  const d = b.node("Sub", [y, target]);
  const perImage = sizeOf(imageDims.slice(1));
  let { term, dterm } = lossTerms(b, d, { loss, charbonnierEps, perImage, ft });
  if (weight) {
    term = b.node("Mul", [term, weight]);
    dterm = b.node("Mul", [dterm, weight]);
  }
  const lossValue = meanPerImage(b, term);
  const grads = appendVjp(b, { seeds: { [y]: dterm }, wrt: ["latent"], shapes });
  b.output(lossValue, ft, [batch]);
  b.output(grads.latent, ft, latentDims, "latent_grad");
  if (withReconstruction) b.output(y, ft, imageDims);
  if (recompute) recomputeInBackward(b, { seeds: [dterm], shapes });
  pruneGraph(graph);
  return {
    graph,
    inputs: { latent: "latent", target, ...(weight ? { weight } : {}) },
    outputs: {
      loss: "loss",
      gradient: "latent_grad",
      ...(withReconstruction ? { reconstruction: y } : {}),
    },
    latentDims,
    imageDims,
  };
}

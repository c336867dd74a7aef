/**
 * latentforge's ONNX library: model I/O, graph builder, constant folding and shape inference,
 * VJP rules and walk, recomputation in the backward pass, the loss-and-gradient graph, its memory
 * estimate and batch fitting, gradient checks and sessions.
 *
 * @example
 * ```ts
 * import { buildLossAndGradient, openSession } from "./mod.ts";
 * const built = await buildLossAndGradient("vae_decoder.onnx", { batch: 1, latentShape: [4, 32, 32] });
 * const { session, provider } = await openSession(built.bytes, { providers: ["cuda", "cpu"] });
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./tensor.ts";
export * from "./graph.ts";
export * from "./graph_builder.ts";
export * from "./model_io.ts";
export { type FoldedGraph, foldGraph, type FoldOptions, pruneGraph, topoSort } from "./fold.ts";
export { fuseUpsampleConv } from "./fuse_upsample_conv.ts";
export { inferShapes, type ShapeMap, type ValueType } from "./shape_inference.ts";
export { type RuleContext, VJP_RULES, type VjpRule } from "./vjp_rules.ts";
export { appendVjp, type VjpOptions } from "./vjp.ts";
export { buildVjpGraph, type VjpGraph, type VjpGraphOptions } from "./vjp_graph.ts";
export {
  buildLossAndGradient,
  estimateLossAndGradient,
  type LossGradientGraph,
  type LossGradientOptions,
  type LossKind,
} from "./loss_gradient.ts";
export {
  checkGradient,
  type GradientCheckOptions,
  type GradientCheckResult,
  seededRandom,
} from "./gradient_check.ts";
export { type OpenedSession, openSession, type SessionOptions } from "./session.ts";
export { recomputeInBackward, type RecomputeOptions, type RecomputeResult } from "./recompute.ts";
export {
  estimateMemory,
  type MemoryEstimate,
  MemoryEstimateError,
  type MemoryEstimateOptions,
  onnxRuntimeOrder,
  RUNTIME_ALLOWANCE,
} from "./memory_estimate.ts";
export { type BatchFit, type BatchFitOptions, fitBatchToMemory, neededBytes } from "./batch_fit.ts";

/**
 * Choosing how many images one loss-and-gradient evaluation takes so that it fits the memory
 * the machine has: the batch's memory is estimated from the graph's tensor sizes before any
 * session exists (`memory_estimate.ts`), and a batch that would not fit is lowered with one
 * line saying so — rather than the kernel's out-of-memory killer ending the run silently.
 *
 * What a batch needs: the runtime's tensors at the peak of one run, the inputs fed to it, and
 * the weights twice (the session's copy of the initializers and the copy its kernels repack).
 * Activations grow with the batch, weights do not; a lowered batch is checked again.
 *
 * @module
 */
import { GraphError, ShapeError, UnsupportedOpError } from "./errors.ts";
import { type Graph, graphFromModel, type ModelProto } from "./graph.ts";
import { estimateLossAndGradient, type LossGradientOptions } from "./loss_gradient.ts";
import { type MemoryEstimate, MemoryEstimateError } from "./memory_estimate.ts";
import { decodeModel, readModel } from "./model_io.ts";

/** Options of {@link fitBatchToMemory}. */
export interface BatchFitOptions {
  /** Bytes the machine has available (default: `Deno.systemMemoryInfo().available`). */
  availableBytes?: number;
  /** Share of the available bytes a batch may take (default 0.9). */
  share?: number;
  /**
   * Execution providers the graph may run on (default: unknown). The estimate is of host memory,
   * where the CPU provider keeps its tensors; a list without `cpu` runs on a device whose memory
   * cannot be asked here, and the requested batch is kept.
   */
  providers?: readonly string[];
  /** Receives the line saying the batch was lowered (default: console.warn). */
  log?: (line: string) => void;
}

/** The batch to run and what it needs. */
export interface BatchFit {
  /** Images per evaluation: the requested batch, or less when that would not fit. */
  batch: number;
  /** Estimated bytes the chosen batch needs (NaN where nothing was estimated). */
  neededBytes: number;
  /** Bytes the machine had available. */
  availableBytes: number;
}

/** Bytes a batch needs, from the estimate of its graph. */
export function neededBytes(m: MemoryEstimate): number {
  return m.peakBytes + m.inputBytes + 2 * m.weightBytes;
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

/**
 * Returns the largest batch, up to `options.batch`, whose loss-and-gradient graph fits the
 * available memory, logging one line when it is lower than requested (or when even one image
 * does not fit; it then returns 1 and the run goes ahead).
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
 * const lines: string[] = [];
 * const options = { batch: 16, latentShape: [4, 64, 64] };
 * // 16 latents of 4×64×64 need about 19 MiB here; with 10 MiB available, fewer go at once.
 * const fit = await fitBatchToMemory(b.graph, options, {
 *   availableBytes: 10 * 2 ** 20,
 *   providers: ["cpu"],
 *   log: (line) => lines.push(line),
 * });
 * assert.ok(fit.batch >= 1 && fit.batch < 16);
 * assert.match(lines[0], /^optimize: a batch of 16 needs about/);
 * ```
 */
export async function fitBatchToMemory(
  decoder: Uint8Array | ModelProto | Graph | string,
  options: LossGradientOptions,
  {
    availableBytes,
    share = 0.9,
    providers,
    log = (line: string) => console.warn(line),
  }: BatchFitOptions = {},
): Promise<BatchFit> {
  const available = availableBytes ?? Deno.systemMemoryInfo().available;
  const requested = options.batch;
  if (providers && !providers.includes("cpu")) {
    return { batch: requested, neededBytes: NaN, availableBytes: available };
  }
  const budget = available * share;
  // Read once: each estimate folds the same decoder again for another batch.
  const graph = typeof decoder === "string"
    ? graphFromModel(await readModel(decoder))
    : decoder instanceof Uint8Array
    ? graphFromModel(decodeModel(decoder))
    : "nodes" in decoder
    ? decoder
    : graphFromModel(decoder);
  const need = async (batch: number) =>
    neededBytes(await estimateLossAndGradient(graph, { ...options, batch }));
  let full: number;
  try {
    full = await need(requested);
  } catch (e) {
    // A decoder whose graph cannot be built fails where the graph is built for the run, with
    // the whole story; here it only means there is nothing to estimate.
    if (e instanceof GraphError || e instanceof ShapeError || e instanceof UnsupportedOpError) {
      return { batch: requested, neededBytes: NaN, availableBytes: available };
    }
    if (e instanceof MemoryEstimateError) {
      log(
        `optimize: the memory of a batch cannot be estimated (${e.message}); running ` +
          `batches of ${requested} as configured`,
      );
      return { batch: requested, neededBytes: NaN, availableBytes: available };
    }
    throw e;
  }
  if (full <= budget) return { batch: requested, neededBytes: full, availableBytes: available };
  const one = requested > 1 ? await need(1) : full;
  let batch = 1, bytes = one;
  if (one <= budget) {
    const perImage = (full - one) / (requested - 1);
    batch = Math.max(1, Math.min(requested - 1, Math.floor((budget - one) / perImage) + 1));
    bytes = await need(batch);
    while (batch > 1 && bytes > budget) bytes = await need(--batch);
  }
  log(
    bytes <= budget
      ? `optimize: a batch of ${requested} needs about ${gib(full)}, ${
        gib(available)
      } available: running batches of ${batch} (about ${gib(bytes)})`
      : `optimize: one image needs about ${gib(one)}, ${
        gib(available)
      } available: running batches of 1 anyway; the system may run out of memory`,
  );
  return { batch, neededBytes: bytes, availableBytes: available };
}

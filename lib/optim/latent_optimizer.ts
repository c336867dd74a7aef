/**
 * The latent optimization loop: a fixed number of batch slots, each holding one image (its
 * latent, its method's state, its stopping rule and pass budget; see image_run.ts). Every pass
 * evaluates the whole batch once, one point per slot, wherever each image is (an Adam step, a
 * point of an L-BFGS line search); an image that stops leaves its slot and the next waiting
 * image takes it, so the batch stays full. The result of each image is its best latent, not its
 * last, and depends neither on the batch it ran in nor on its slot.
 *
 * @module
 */
import { ImageRun } from "./image_run.ts";
import { NonFiniteError } from "./method.ts";
import type { StopReason } from "./stopping.ts";

export { NonFiniteError };

/** One image to optimize. */
export interface OptimizeJob {
  id: string;
  /** The encoder's latent (what is stored and optimized), `latentSize` floats. */
  latent: Float32Array;
  /** The preprocessed image, `imageSize` floats in the model's input range. */
  target: Float32Array;
  /** A checkpoint a previous, interrupted attempt left, if any. */
  checkpoint?: Uint8Array | null;
}

/** What one image's optimization gives. */
export interface OptimizeResult {
  id: string;
  /** The best latent seen. */
  latent: Float32Array;
  lossInitial: number;
  lossFinal: number;
  /** Updates of the latent: Adam steps, or L-BFGS steps (completed line searches). */
  steps: number;
  /** Loss-and-gradient evaluations, line-search ones included. */
  passes: number;
  stop: StopReason;
  psnrInitial: number;
  psnrFinal: number;
  ssimInitial: number;
  ssimFinal: number;
  /**
   * The loss after each step (`steps`, `losses`) and the PSNR of the best latent after each pass
   * (`passes`, `psnr`), each at most 200 points.
   */
  curve: { steps: number[]; losses: number[]; passes: number[]; psnr: number[] };
  /** Passes computed by this attempt (fewer than `passes` after a resume). */
  computedPasses: number;
}

/** Evaluates a full batch: per-image losses, update directions and reconstructions. */
export interface BatchEvaluator {
  /** `anchors` holds each slot's starting (encoder) latent. */
  evaluate(latents: Float32Array, targets: Float32Array, anchors: Float32Array): Promise<{
    losses: Float32Array;
    /** Gradient of the loss w.r.t. the latent (or the gradient-free direction). */
    directions: Float32Array;
    reconstructions: Float32Array;
  }>;
}

/** Settings of the loop. */
export interface OptimizerSettings {
  batch: number;
  latentSize: number;
  imageShape: [number, number, number];
  /** `"adam"` (the default; the gradient-free method too) or `"lbfgs"`. */
  method?: "adam" | "lbfgs";
  /** Adam's learning rate; L-BFGS's scale of the first step each line search tries. */
  lr: number;
  schedule: "constant" | "cosine";
  warmupSteps: number;
  maxSteps: number;
  /** Evaluations an image gets at most, line-search ones included. Default: no limit. */
  maxPasses?: number;
  /** L-BFGS's memory: pairs kept. Default: `10`. */
  lbfgsHistory?: number;
  patience: number;
  tolerance: number;
  /** A checkpoint every this many passes of an image. */
  checkpointEvery: number;
  /** Peak-to-peak of the image range (2 for [-1, 1]). */
  dataRange: number;
}

/** An image's counts after one of its passes (for a progress line). */
export interface PassProgress {
  id: string;
  steps: number;
  passes: number;
}

/**
 * Runs the loop until `next` has no more jobs and every slot is empty.
 *
 * `next(max, wait)` hands out up to `max` new jobs (waiting for at least one when `wait`);
 * `save` stores a checkpoint; `done` receives each image's result or error; `progress`, if
 * given, hears of every pass of every image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * // A pure numeric stand-in for a decoder: the image is the latent, the loss ½‖z − x‖².
 * const evaluator = {
 *   evaluate(latents: Float32Array, targets: Float32Array) {
 *     const directions = latents.map((z, i) => z - targets[i]);
 *     const losses = new Float32Array([directions.reduce((s, d) => s + d * d, 0) / 2]);
 *     return Promise.resolve({ losses, directions, reconstructions: latents.slice() });
 *   },
 * };
 * const target = Float32Array.from({ length: 121 }, (_, i) => Math.sin(i) / 2);
 * const jobs = [{ id: "a", latent: new Float32Array(121), target }];
 * const results: unknown[] = [];
 * await optimizeLatents({
 *   settings: {
 *     batch: 1, latentSize: 121, imageShape: [1, 11, 11], method: "lbfgs", lr: 1,
 *     schedule: "constant", warmupSteps: 0, maxSteps: 100, maxPasses: 20, patience: 5,
 *     tolerance: 0, checkpointEvery: 10, dataRange: 2,
 *   },
 *   evaluator,
 *   next: (max) => Promise.resolve(jobs.splice(0, max)),
 *   save: () => Promise.resolve(),
 *   done: (_id, result) => Promise.resolve(void results.push(result)),
 *   signal: new AbortController().signal,
 * });
 * const [result] = results as { lossInitial: number; lossFinal: number; passes: number }[];
 * assert.ok(result.lossFinal < 1e-6 * result.lossInitial);
 * assert.ok(result.passes <= 20);
 * ```
 */
export async function optimizeLatents(
  { settings, evaluator, next, save, done, progress, signal }: {
    settings: OptimizerSettings;
    evaluator: BatchEvaluator;
    next: (max: number, wait: boolean) => Promise<OptimizeJob[]>;
    save: (id: string, checkpoint: Uint8Array) => Promise<void>;
    done: (id: string, result: OptimizeResult | Error) => Promise<void>;
    progress?: (counts: PassProgress) => void;
    signal: AbortSignal;
  },
): Promise<void> {
  const batch = new Batch(settings);
  let exhausted = false;
  const fill = async () => {
    const free = batch.free();
    if (free.length === 0 || exhausted || signal.aborted) return;
    const wait = free.length === settings.batch;
    const jobs = await next(free.length, wait);
    if (wait && jobs.length === 0) exhausted = true;
    for (const job of jobs) {
      try {
        batch.place(free.shift()!, ImageRun.start(job, settings));
      } catch (e) {
        await done(job.id, e as Error);
      }
    }
  };
  while (true) {
    await fill();
    if (batch.empty()) {
      if (exhausted || signal.aborted) return;
      continue;
    }
    if (signal.aborted) return;
    const out = await evaluator.evaluate(batch.points(), batch.targets, batch.anchors);
    for (const [i, run] of batch.occupied()) {
      const outcome = await takePass(run, batch, i, out, settings, save, progress);
      if (outcome === null) continue;
      batch.clear(i);
      await done(run.job.id, outcome);
    }
  }
}

/**
 * Hands slot `i`'s part of an evaluation to its image and checkpoints it when due; returns the
 * image's result once it is finished (or the error that failed it), or `null` while it goes on.
 */
async function takePass(
  run: ImageRun,
  batch: Batch,
  i: number,
  out: Awaited<ReturnType<BatchEvaluator["evaluate"]>>,
  settings: OptimizerSettings,
  save: (id: string, checkpoint: Uint8Array) => Promise<void>,
  progress?: (counts: PassProgress) => void,
): Promise<OptimizeResult | Error | null> {
  const { latentSize } = settings;
  const recon = batch.slice(out.reconstructions, i, batch.imageSize);
  const target = batch.target(i);
  try {
    if (run.finalPass) {
      run.takeFinal(recon);
      return run.result(run.finalPass, target);
    }
    const gradient = out.directions.subarray(i * latentSize, (i + 1) * latentSize);
    const stop = run.take(out.losses[i], gradient, recon, target);
    progress?.({ id: run.job.id, steps: run.steps, passes: run.passes });
    if (stop && run.hasBestReconstruction) return run.result(stop, target);
    if (stop) run.finalPass = stop;
    else if (run.passes % settings.checkpointEvery === 0) {
      await save(run.job.id, run.checkpoint());
    }
    return null;
  } catch (e) {
    // The image fails with what went wrong (a non-finite value, a bad checkpoint); the others go on.
    return e as Error;
  }
}

/** The slots and the batched tensors the evaluator reads. */
class Batch {
  readonly imageSize: number;
  readonly latents: Float32Array;
  readonly targets: Float32Array;
  readonly anchors: Float32Array;
  readonly #latentSize: number;
  readonly #slots: (ImageRun | null)[];

  constructor({ batch, latentSize, imageShape }: OptimizerSettings) {
    this.imageSize = imageShape[0] * imageShape[1] * imageShape[2];
    this.#latentSize = latentSize;
    this.#slots = Array.from({ length: batch }, () => null);
    this.latents = new Float32Array(batch * latentSize);
    this.targets = new Float32Array(batch * this.imageSize);
    this.anchors = new Float32Array(batch * latentSize);
  }

  free(): number[] {
    return this.#slots.flatMap((s, i) => s === null ? [i] : []);
  }

  empty(): boolean {
    return this.#slots.every((s) => s === null);
  }

  occupied(): [number, ImageRun][] {
    return this.#slots.flatMap((s, i) => s === null ? [] : [[i, s] as [number, ImageRun]]);
  }

  place(i: number, run: ImageRun): void {
    this.#slots[i] = run;
    this.targets.set(run.job.target, i * this.imageSize);
    this.anchors.set(run.job.latent, i * this.#latentSize);
  }

  clear(i: number): void {
    this.#slots[i] = null;
  }

  /** Every slot's next point; empty slots evaluate zeros, and their outputs are ignored. */
  points(): Float32Array {
    const n = this.#latentSize;
    this.#slots.forEach((s, i) => {
      if (s) this.latents.set(s.point, i * n);
      else this.latents.fill(0, i * n, (i + 1) * n);
    });
    return this.latents;
  }

  target(i: number): Float32Array {
    return this.slice(this.targets, i, this.imageSize);
  }

  slice(values: Float32Array, i: number, size: number): Float32Array {
    return values.subarray(i * size, (i + 1) * size);
  }
}

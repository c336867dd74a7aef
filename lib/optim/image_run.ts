/**
 * One image's optimization as the loop sees it: its method (Adam or L-BFGS), its stopping rule,
 * its pass count and budget, the best latent seen with its reconstruction, the quality of the
 * encoder's latent, and its curves (loss per step; PSNR of the best latent per pass). It turns
 * each evaluation into a decision (go on, or stop and why), and itself into checkpoint bytes
 * and back.
 *
 * @module
 */
import { AdamMethod } from "./adam_method.ts";
import {
  CheckpointError,
  type CheckpointParts,
  checkpointReader,
  decodeCheckpoint,
  encodeCheckpoint,
  partsUnder,
  prefixParts,
} from "./checkpoint.ts";
import { LbfgsMethod } from "./lbfgs_method.ts";
import type { MethodState } from "./method.ts";
import { NonFiniteError } from "./method.ts";
import { psnr, ssim } from "./metrics.ts";
import { downsampleCurve, StoppingTracker, type StopReason } from "./stopping.ts";
import type { OptimizeJob, OptimizeResult, OptimizerSettings } from "./latent_optimizer.ts";

interface Initial {
  loss: number;
  psnr: number;
  ssim: number;
}

/** Points kept of each curve of a result. */
const CURVE_POINTS = 200;

/**
 * The update count over which Adam's schedule runs: `maxSteps`, or fewer when the pass budget
 * allows fewer updates (a cosine then decays within the budget).
 */
function scheduleSteps(settings: OptimizerSettings): number {
  const passes = settings.maxPasses ?? Infinity;
  return Math.max(1, Math.min(settings.maxSteps, passes - 1));
}

function methodOf(
  settings: OptimizerSettings,
  latent: Float32Array,
  resume?: { parts: CheckpointParts; source: string },
): MethodState {
  const n = settings.latentSize;
  if ((settings.method ?? "adam") === "lbfgs") {
    const lbfgs = { history: settings.lbfgsHistory ?? 10, lr: settings.lr };
    return resume
      ? LbfgsMethod.resume(resume.parts, n, lbfgs, resume.source)
      : LbfgsMethod.start(latent, lbfgs);
  }
  const schedule = {
    kind: settings.schedule,
    lr: settings.lr,
    maxSteps: scheduleSteps(settings),
    warmupSteps: settings.warmupSteps,
  };
  return resume
    ? AdamMethod.resume(resume.parts, n, schedule, resume.source)
    : AdamMethod.start(latent, schedule);
}

/** One image in a slot of the batch. */
export class ImageRun {
  readonly job: OptimizeJob;
  readonly #settings: OptimizerSettings;
  readonly #method: MethodState;
  readonly #tracker: StoppingTracker;
  readonly #best: Float32Array;
  #bestLoss = Infinity;
  /** Reconstruction of the best latent, when this attempt evaluated it. */
  #bestRecon: Float32Array | null = null;
  #passLosses: number[] = [];
  #passPsnr: number[] = [];
  #initial: Initial | null = null;
  #computed = 0;
  /** Set when only one more evaluation, of the best latent, is needed to finish. */
  finalPass: StopReason | null = null;

  private constructor(job: OptimizeJob, settings: OptimizerSettings, method: MethodState) {
    this.job = job;
    this.#settings = settings;
    this.#method = method;
    this.#tracker = new StoppingTracker({
      patience: settings.patience,
      tolerance: settings.tolerance,
      maxSteps: settings.maxSteps,
    });
    this.#best = job.latent.slice();
  }

  /** A run of `job`, from its checkpoint when it has one. */
  static start(job: OptimizeJob, settings: OptimizerSettings): ImageRun {
    if (job.latent.length !== settings.latentSize) {
      throw new NonFiniteError(
        `latent of ${job.id}: expected ${settings.latentSize} values, found ${job.latent.length}`,
      );
    }
    if (!job.checkpoint) return new ImageRun(job, settings, methodOf(settings, job.latent));
    return ImageRun.#resume(job, settings, job.checkpoint);
  }

  static #resume(job: OptimizeJob, settings: OptimizerSettings, bytes: Uint8Array): ImageRun {
    const source = `checkpoint of ${job.id}`;
    const parts = decodeCheckpoint(bytes, source);
    const wanted = settings.method ?? "adam";
    if (parts.method !== wanted) {
      throw new CheckpointError(
        `${source}: written by method ${parts.method}, but the settings ask for ${wanted}`,
      );
    }
    const method = methodOf(settings, job.latent, { parts: partsUnder("method", parts), source });
    const run = new ImageRun(job, settings, method);
    const read = checkpointReader(parts, source);
    const stepLosses = read.float64("step_losses");
    for (const loss of stepLosses) run.#tracker.record(loss);
    run.#best.set(read.float32("best", settings.latentSize));
    run.#bestLoss = read.number("best_loss");
    run.#passLosses = Array.from(read.float64("pass_losses"));
    run.#passPsnr = Array.from(read.float64("pass_psnr", run.#passLosses.length));
    run.#initial = {
      loss: read.number("initial_loss"),
      psnr: read.number("initial_psnr"),
      ssim: read.number("initial_ssim"),
    };
    return run;
  }

  /** Evaluations of the optimization so far (the final one of a resumed run aside). */
  get passes(): number {
    return this.#passLosses.length;
  }

  /** Steps (updates of the latent) so far. */
  get steps(): number {
    return this.#method.steps;
  }

  /** The latent to evaluate next. */
  get point(): Float32Array {
    return this.finalPass ? this.#best : this.#method.point;
  }

  /** Whether the best latent's reconstruction is at hand (else a final pass computes it). */
  get hasBestReconstruction(): boolean {
    return this.#bestRecon !== null;
  }

  /**
   * Takes the evaluation of `point`: records it, feeds the method, and says why the image stops
   * now, or `null` to go on. A loss, gradient or latent that is not finite throws
   * {@link NonFiniteError}.
   */
  take(
    loss: number,
    gradient: Float32Array,
    recon: Float32Array,
    target: Float32Array,
  ): StopReason | null {
    const pass = this.passes + 1;
    if (!Number.isFinite(loss)) {
      throw new NonFiniteError(`loss is ${loss} at step ${this.steps} (pass ${pass})`);
    }
    const { dataRange, imageShape } = this.#settings;
    const quality = psnr(recon, target, { dataRange });
    this.#initial ??= { loss, psnr: quality, ssim: ssim(recon, target, imageShape, { dataRange }) };
    this.#passLosses.push(loss);
    this.#passPsnr.push(quality);
    this.#computed++;
    if (loss < this.#bestLoss) {
      this.#bestLoss = loss;
      this.#best.set(this.#method.point);
      this.#bestRecon = recon.slice();
    }
    const { stepLoss, stop: methodStop } = this.#method.observe(loss, gradient, pass);
    const stop = (stepLoss === null ? null : this.#tracker.record(stepLoss).stop) ?? methodStop ??
      (pass >= (this.#settings.maxPasses ?? Infinity) ? "max_passes" : null);
    return stop ?? this.#method.advance();
  }

  /** Takes the final evaluation, of the best latent: its reconstruction. */
  takeFinal(recon: Float32Array): void {
    this.#bestRecon = recon.slice();
  }

  /** The state as checkpoint bytes. */
  checkpoint(): Uint8Array {
    const method = this.#method.save();
    const nested = prefixParts("method", method);
    const initial = this.#initial!;
    return encodeCheckpoint({
      method: method.method,
      numbers: {
        steps: this.steps,
        passes: this.passes,
        best_loss: this.#bestLoss,
        initial_loss: initial.loss,
        initial_psnr: initial.psnr,
        initial_ssim: initial.ssim,
        ...nested.numbers,
      },
      arrays: {
        best: this.#best,
        step_losses: Float64Array.from(this.#tracker.history),
        pass_losses: Float64Array.from(this.#passLosses),
        pass_psnr: Float64Array.from(this.#passPsnr),
        ...nested.arrays,
      },
    });
  }

  /** The image's result, once it stopped for `stop` and its best reconstruction is at hand. */
  result(stop: StopReason, target: Float32Array): OptimizeResult {
    const recon = this.#bestRecon!;
    const initial = this.#initial!;
    const { dataRange, imageShape } = this.#settings;
    return {
      id: this.job.id,
      latent: this.#best,
      lossInitial: initial.loss,
      lossFinal: this.#bestLoss,
      steps: this.steps,
      passes: this.passes,
      stop,
      psnrInitial: initial.psnr,
      psnrFinal: psnr(recon, target, { dataRange }),
      ssimInitial: initial.ssim,
      ssimFinal: ssim(recon, target, imageShape, { dataRange }),
      curve: { ...downsampleCurve(this.#tracker.history, CURVE_POINTS), ...this.#passCurve() },
      computedPasses: this.#computed,
    };
  }

  /** PSNR of the best latent after each pass, at most {@link CURVE_POINTS} of them. */
  #passCurve(): { passes: number[]; psnr: number[] } {
    const best: number[] = [];
    let at = 0;
    this.#passLosses.forEach((loss, k) => {
      if (loss < this.#passLosses[at]) at = k;
      best.push(this.#passPsnr[at]);
    });
    const { steps, losses } = downsampleCurve(best, CURVE_POINTS);
    return { passes: steps.map((k) => k + 1), psnr: losses };
  }
}

/**
 * Where a checkpoint stands: the method that wrote it, and its steps and passes so far.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeCheckpoint } from "./checkpoint.ts";
 * const bytes = encodeCheckpoint({ method: "lbfgs", numbers: { steps: 3, passes: 7 }, arrays: {} });
 * assert.deepEqual(checkpointProgress(bytes), { method: "lbfgs", steps: 3, passes: 7 });
 * ```
 */
export function checkpointProgress(
  bytes: Uint8Array,
  source = "checkpoint",
): { method: string; steps: number; passes: number } {
  const parts = decodeCheckpoint(bytes, source);
  const read = checkpointReader(parts, source);
  return { method: parts.method, steps: read.number("steps"), passes: read.number("passes") };
}

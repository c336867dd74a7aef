/**
 * The latent optimization loop: a fixed number of batch slots, each holding one image's
 * latent, Adam state and stopping rule. Every step evaluates the whole batch once; an image
 * that stops leaves its slot and the next waiting image takes it, so the batch stays full.
 * The result of each image is its best latent, not its last.
 *
 * @module
 */
import { adamUpdate, createAdamState, NonFiniteGradientError } from "./adam.ts";
import { decodeCheckpoint, encodeCheckpoint, type OptimCheckpoint } from "./checkpoint.ts";
import { psnr, ssim } from "./metrics.ts";
import { learningRate } from "./schedule.ts";
import { downsampleCurve, StoppingTracker, type StopReason } from "./stopping.ts";

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
  /** Updates applied. */
  steps: number;
  stop: StopReason;
  psnrInitial: number;
  psnrFinal: number;
  ssimInitial: number;
  ssimFinal: number;
  /** The loss curve, at most 200 points. */
  curve: { steps: number[]; losses: number[] };
  /** Updates computed by this attempt (fewer than `steps` after a resume). */
  computedSteps: number;
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
  lr: number;
  schedule: "constant" | "cosine";
  warmupSteps: number;
  maxSteps: number;
  patience: number;
  tolerance: number;
  checkpointEvery: number;
  /** Peak-to-peak of the image range (2 for [-1, 1]). */
  dataRange: number;
}

/** Raised for an image whose loss or direction stops being finite. */
export class NonFiniteError extends Error {
  override readonly name = "NonFiniteError";
}

interface Slot {
  job: OptimizeJob;
  z: Float32Array;
  adam: ReturnType<typeof createAdamState>;
  tracker: StoppingTracker;
  best: Float32Array;
  /** Reconstruction of `best`, when this attempt evaluated it. */
  bestRecon: Float32Array | null;
  initial: { loss: number; psnr: number; ssim: number } | null;
  computed: number;
  /** Set when the loop only needs one more evaluation of `best` to finish. */
  finalPass: StopReason | null;
}

/**
 * Runs the loop until `next` has no more jobs and every slot is empty.
 *
 * `next(max, wait)` hands out up to `max` new jobs (waiting for at least one when `wait`);
 * `save` stores a checkpoint; `done` receives each image's result or error.
 */
export async function optimizeLatents(
  {
    settings,
    evaluator,
    next,
    save,
    done,
    signal,
  }: {
    settings: OptimizerSettings;
    evaluator: BatchEvaluator;
    next: (max: number, wait: boolean) => Promise<OptimizeJob[]>;
    save: (id: string, checkpoint: Uint8Array) => Promise<void>;
    done: (id: string, result: OptimizeResult | Error) => Promise<void>;
    signal: AbortSignal;
  },
): Promise<void> {
  const { batch, latentSize, imageShape } = settings;
  const imageSize = imageShape[0] * imageShape[1] * imageShape[2];
  const slots: (Slot | null)[] = Array.from({ length: batch }, () => null);
  const latents = new Float32Array(batch * latentSize);
  const targets = new Float32Array(batch * imageSize);
  const anchors = new Float32Array(batch * latentSize);
  let exhausted = false;

  const fill = async () => {
    const free = slots.flatMap((s, i) => s === null ? [i] : []);
    if (free.length === 0 || exhausted || signal.aborted) return;
    const wait = free.length === batch;
    const jobs = await next(free.length, wait);
    if (wait && jobs.length === 0) exhausted = true;
    for (const job of jobs) {
      const i = free.shift()!;
      try {
        slots[i] = startSlot(job, settings);
        targets.set(job.target, i * imageSize);
        anchors.set(job.latent, i * latentSize);
      } catch (e) {
        await done(job.id, e as Error);
      }
    }
  };

  while (true) {
    await fill();
    if (slots.every((s) => s === null)) {
      if (exhausted || signal.aborted) return;
      continue;
    }
    if (signal.aborted) return;
    for (let i = 0; i < batch; i++) {
      const s = slots[i];
      // Empty slots evaluate zeros; their outputs are ignored.
      if (s) latents.set(s.finalPass ? s.best : s.z, i * latentSize);
      else latents.fill(0, i * latentSize, (i + 1) * latentSize);
    }
    const { losses, directions, reconstructions } = await evaluator.evaluate(
      latents,
      targets,
      anchors,
    );
    for (let i = 0; i < batch; i++) {
      const s = slots[i];
      if (!s) continue;
      const recon = reconstructions.subarray(i * imageSize, (i + 1) * imageSize);
      const target = targets.subarray(i * imageSize, (i + 1) * imageSize);
      try {
        if (s.finalPass) {
          s.bestRecon = recon.slice();
          await finish(s, s.finalPass, target);
          slots[i] = null;
          continue;
        }
        const loss = losses[i];
        const step = s.adam.step;
        if (!Number.isFinite(loss)) {
          throw new NonFiniteError(`loss is ${loss} at step ${step}`);
        }
        if (s.initial === null) {
          s.initial = {
            loss,
            psnr: psnr(recon, target, { dataRange: settings.dataRange }),
            ssim: ssim(recon, target, imageShape, { dataRange: settings.dataRange }),
          };
        }
        const { improved, stop } = s.tracker.record(loss);
        if (improved) {
          s.best.set(s.z);
          s.bestRecon = recon.slice();
        }
        if (stop) {
          if (s.bestRecon) {
            await finish(s, stop, target);
            slots[i] = null;
          } else {
            s.finalPass = stop;
          }
          continue;
        }
        const lr = learningRate({
          kind: settings.schedule,
          lr: settings.lr,
          maxSteps: settings.maxSteps,
          warmupSteps: settings.warmupSteps,
        }, step);
        adamUpdate(s.z, directions.subarray(i * latentSize, (i + 1) * latentSize), s.adam, lr);
        s.computed++;
        for (let k = 0; k < latentSize; k++) {
          if (!Number.isFinite(s.z[k])) {
            throw new NonFiniteError(`latent became ${s.z[k]} at step ${s.adam.step}`);
          }
        }
        if (s.adam.step % settings.checkpointEvery === 0) {
          await save(s.job.id, checkpointOf(s));
        }
      } catch (e) {
        const error = e instanceof NonFiniteGradientError
          ? new NonFiniteError(`gradient is ${e.value} at step ${e.step - 1}`)
          : e as Error;
        await done(s.job.id, error);
        slots[i] = null;
      }
    }
  }

  async function finish(s: Slot, stop: StopReason, target: Float32Array) {
    const recon = s.bestRecon!;
    const history = s.tracker.history;
    const initial = s.initial!;
    await done(s.job.id, {
      id: s.job.id,
      latent: s.best,
      lossInitial: initial.loss,
      lossFinal: s.tracker.bestLoss,
      steps: s.adam.step,
      stop,
      psnrInitial: initial.psnr,
      psnrFinal: psnr(recon, target, { dataRange: settings.dataRange }),
      ssimInitial: initial.ssim,
      ssimFinal: ssim(recon, target, settings.imageShape, { dataRange: settings.dataRange }),
      curve: downsampleCurve(history, 200),
      computedSteps: s.computed,
    });
  }
}

function startSlot(job: OptimizeJob, settings: OptimizerSettings): Slot {
  const stopping = {
    patience: settings.patience,
    tolerance: settings.tolerance,
    maxSteps: settings.maxSteps,
  };
  if (job.latent.length !== settings.latentSize) {
    throw new NonFiniteError(
      `latent of ${job.id}: expected ${settings.latentSize} values, found ${job.latent.length}`,
    );
  }
  if (job.checkpoint) {
    const c: OptimCheckpoint = decodeCheckpoint(job.checkpoint, `checkpoint of ${job.id}`);
    const initial = JSON.parse(c.meta || "null");
    return {
      job,
      z: c.latent,
      adam: c.adam,
      tracker: new StoppingTracker(stopping, c.history),
      best: c.bestLatent,
      bestRecon: null,
      initial,
      computed: 0,
      finalPass: null,
    };
  }
  return {
    job,
    z: job.latent.slice(),
    adam: createAdamState(settings.latentSize),
    tracker: new StoppingTracker(stopping),
    best: job.latent.slice(),
    bestRecon: null,
    initial: null,
    computed: 0,
    finalPass: null,
  };
}

function checkpointOf(s: Slot): Uint8Array {
  return encodeCheckpoint({
    latent: s.z,
    adam: s.adam,
    bestLatent: s.best,
    bestLoss: s.tracker.bestLoss,
    bestStep: s.tracker.bestStep,
    history: Float64Array.from(s.tracker.history),
    meta: JSON.stringify(s.initial),
  });
}

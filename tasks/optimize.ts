/**
 * optimize: every latent refined until the decoder reconstructs its image as closely as it
 * can — by Adam or L-BFGS on the gradient of the derived loss graph, or gradient-free (Hong et
 * al., NeurIPS 2024) — starting from the encoder's latent. Images stop on their own (relative
 * improvement below `tolerance` over `patience` steps, `max_steps` updates or `max_passes`
 * evaluations), leave the batch, and the next image takes the slot. Checkpoints make a killed
 * run resume mid-optimization. An image's result depends neither on its batch nor on when
 * checkpoints were taken, so `batch_size` and `checkpoint_every` stay out of the key.
 *
 * With `method: "none"` the encoder's latent is the result: no model is opened, each item
 * records the encoder's latent as it is, with no metrics.
 *
 * Reads: `encode` latents and `preprocess` tensors (computed again from their recipes and
 * checked against their identities); the decoder (and, gradient-free, the
 * encoder). Produces per item: `latent` (`.npy`, the best latent seen), `curve` (JSON: loss per
 * step and PSNR per pass, ≤ 200 points each); metadata: losses, PSNR and SSIM before and after,
 * steps, passes, stop reason, provider.
 *
 * @module
 */
import { each, type Item, type ItemSource, type TaskContext } from "../lib/dag/task.ts";
import { decodeNpy, encodeNpy } from "../lib/format/npy.ts";
import { gradientEvaluator, gradientFreeEvaluator } from "../lib/model/evaluators.ts";
import { ModelError, ModelSession, openVae } from "../lib/model/vae.ts";
import { LatentNormalization } from "../lib/model/normalization.ts";
import { PRESETS } from "../lib/model/presets.ts";
import { UnsupportedOpError } from "../lib/onnx/errors.ts";
import {
  type BatchEvaluator,
  type OptimizeJob,
  optimizeLatents,
  type OptimizeResult,
  type OptimizerSettings,
} from "../lib/optim/latent_optimizer.ts";
import { checkpointProgress } from "../lib/optim/image_run.ts";
import { preprocessedTensor } from "../lib/image/preprocessed_tensor.ts";
import type { Config } from "../config/schema.ts";

interface Models {
  /** Absent with `method: "none"` only. */
  decoder?: string;
  encoder?: string;
}

interface Shapes {
  latent: number[];
  image: number[];
}

type Evaluator = BatchEvaluator & { provider: string; batch?: number };

const where = (source: { path?: string; url?: string }) => source.path ?? source.url ?? "?";

export default each<Config, Models>({
  name: "optimize",
  deps: ["encode", "preprocess"],
  config: [
    "optimize",
    // How often state is saved, and how many images share a step: an image's latent is the same
    // either way (bit for bit at batch 1 and 4; batch fitting lowers the batch to fit memory).
    "!optimize.batch_size",
    "!optimize.checkpoint_every",
    "model.scaling_factor",
    "model.shift_factor",
    "model.latents_mean",
    "model.latents_std",
    "model.input_range",
  ],
  reads: [
    "optimize.batch_size",
    "optimize.checkpoint_every",
    "model.encoder",
    "model.decoder",
    "model.preset",
    "model.providers",
    "model.threads",
    "preprocess.size",
  ],
  version: "3",
  source: import.meta.url,
  describe: "refine every latent until the decoder matches the image",
  files: ({ optimize }) =>
    optimize.method === "none"
      ? {}
      : optimize.method === "gradient_free"
      ? { decoder: "model.decoder", encoder: "model.encoder" }
      : { decoder: "model.decoder" },
  // How far an interrupted image got: its checkpoint says the step.
  checkpointProgress: (bytes, { optimize }) => ({
    step: checkpointProgress(bytes).steps,
    of: optimize.max_steps,
  }),
  prepare(ctx) {
    const { decoder, encoder } = ctx.files;
    return Promise.resolve({ state: { decoder: decoder?.path, encoder: encoder?.path } });
  },
  // A batch holds latents of one shape (images of one size).
  group: (item) => ({
    latent: (item.inputs.encode.meta as { shape: number[] }).shape,
    image: (item.inputs.preprocess.meta as { shape: number[] }).shape,
  }),
  async runBatched(ctx, source, models) {
    if (ctx.config.optimize.method === "none") return await keepEncoded(source);
    const shapes = source.group as unknown as Shapes;
    const evaluator = await openEvaluator(ctx, models, shapes);
    await optimizeLatents({
      settings: loopSettings(ctx.config, shapes, evaluator),
      evaluator,
      signal: ctx.signal,
      next: (max, wait) => loadJobs(ctx, source, max, wait),
      save: (id, bytes) => source.context(id).saveCheckpoint(bytes),
      progress: ({ id, steps }) => source.context(id).steps(steps, ctx.config.optimize.max_steps),
      async done(id, result) {
        if (result instanceof Error) return await source.done(id, result);
        await source.done(id, await stored(ctx, shapes, result, evaluator.provider));
      },
    });
  },
});

/** `method: "none"`: each item's result is its encoder latent, as encode stored it. */
async function keepEncoded(source: ItemSource): Promise<void> {
  while (true) {
    const items = await source.next(64);
    if (items.length === 0) return;
    for (const item of items) {
      await source.done(item, {
        objects: { latent: item.inputs.encode.objects.latent },
        meta: { method: "none" },
      });
    }
  }
}

/**
 * Up to `max` ready items as jobs (waiting for one when `wait`). An item whose image cannot be
 * had (its source changed since it was listed) fails alone; the others go on.
 */
async function loadJobs(
  ctx: TaskContext<Config>,
  source: ItemSource,
  max: number,
  wait: boolean,
): Promise<OptimizeJob[]> {
  while (true) {
    const items = wait ? await source.next(max) : source.poll(max);
    const loaded = await Promise.all(
      items.map((item) => load(ctx, source, item).catch((e: Error) => e)),
    );
    const jobs: OptimizeJob[] = [];
    for (const [i, job] of loaded.entries()) {
      if (job instanceof Error) await source.done(items[i], job);
      else jobs.push(job);
    }
    // Waiting, an empty answer means no more items: ask again when only failures came.
    if (jobs.length > 0 || items.length === 0 || !wait) return jobs;
  }
}

/** One item's job: its encoder latent, its image and the checkpoint an earlier attempt left. */
async function load(
  ctx: TaskContext<Config>,
  source: ItemSource,
  item: Item,
): Promise<OptimizeJob> {
  const [latent, target, checkpoint] = await Promise.all([
    ctx.store.get(item.inputs.encode.objects.latent),
    preprocessedTensor(ctx.store, item.inputs.preprocess, `image ${item.id}`),
    source.context(item).loadCheckpoint(),
  ]);
  let start = 0;
  if (checkpoint) {
    const { steps, passes } = checkpointProgress(checkpoint, `checkpoint of ${item.id}`);
    ctx.log(`${item.id}: resuming from its checkpoint at step ${steps} (pass ${passes})`);
    start = steps;
  }
  source.context(item).steps(start, ctx.config.optimize.max_steps);
  return {
    id: item.id,
    latent: decodeNpy(latent, `latent of ${item.id}`).data as Float32Array,
    target: target.data,
    checkpoint,
  };
}

/** The loss-and-gradient graph (Adam, L-BFGS), or the encoder and decoder (gradient-free). */
async function openEvaluator(
  ctx: TaskContext<Config>,
  models: Models,
  shapes: Shapes,
): Promise<Evaluator> {
  const { model, optimize } = ctx.config;
  const decoderLabel = `model.decoder (${where(model.decoder!)})`;
  const settings = {
    batch: optimize.batch_size,
    fitMemory: true,
    latentShape: shapes.latent.slice(1) as [number, number, number],
    // The stored latents carry the channel count encode derived from the models.
    normalization: LatentNormalization.of(shapes.latent[1], model),
    imageShape: shapes.image.slice(1),
    loss: optimize.loss,
    charbonnierEps: optimize.charbonnier_eps,
  };
  const runtime = { providers: model.providers, threads: model.threads, log: ctx.log };
  if (optimize.method !== "gradient_free") {
    return await gradientEvaluator(models.decoder!, decoderLabel, settings, runtime).catch(
      (e: Error) => {
        if (e instanceof ModelError) throw e;
        // Name the decoder the user configured; an op without a gradient rule has a way out.
        const hint = e instanceof UnsupportedOpError
          ? `; optimize.method "gradient_free" needs no gradient rules`
          : "";
        throw new ModelError(`${decoderLabel}: ${e.message}${hint}`);
      },
    );
  }
  return gradientFreeEvaluator(
    await openVae({
      encoder: { path: models.encoder!, label: `model.encoder (${where(model.encoder)})` },
      decoder: { path: models.decoder!, label: decoderLabel },
      model,
      size: ctx.config.preprocess.size,
      runtime,
    }),
    await ModelSession.open(models.decoder!, decoderLabel, runtime, {
      float16Overflow: model.preset ? PRESETS[model.preset].fp16Overflow : undefined,
    }),
    settings,
  );
}

function loopSettings(config: Config, shapes: Shapes, evaluator: Evaluator): OptimizerSettings {
  const { optimize, model } = config;
  return {
    // The gradient graph's batch, lowered when a batch would not fit the memory.
    batch: evaluator.batch ?? optimize.batch_size,
    latentSize: shapes.latent.reduce((a, b) => a * b, 1),
    imageShape: shapes.image.slice(1) as [number, number, number],
    method: optimize.method === "lbfgs" ? "lbfgs" : "adam",
    lr: optimize.lr,
    schedule: optimize.schedule,
    warmupSteps: optimize.warmup_steps,
    maxSteps: optimize.max_steps,
    maxPasses: optimize.max_passes ?? undefined,
    lbfgsHistory: optimize.lbfgs?.history,
    patience: optimize.patience,
    tolerance: optimize.tolerance,
    checkpointEvery: optimize.checkpoint_every,
    dataRange: model.input_range[1] - model.input_range[0],
  };
}

/** Stores an image's latent and curves; its output records them with its metrics. */
async function stored(
  ctx: TaskContext<Config>,
  shapes: Shapes,
  result: OptimizeResult,
  provider: string,
) {
  const latent = await ctx.store.put(
    encodeNpy({ dtype: "<f4", shape: shapes.latent, data: result.latent }),
  );
  const curve = await ctx.store.putJson(result.curve);
  return {
    objects: { latent, curve },
    meta: {
      loss_initial: result.lossInitial,
      loss_final: result.lossFinal,
      psnr_initial: result.psnrInitial,
      psnr_final: result.psnrFinal,
      ssim_initial: result.ssimInitial,
      ssim_final: result.ssimFinal,
      steps: result.steps,
      passes: result.passes,
      stop: result.stop,
      provider,
    },
  };
}

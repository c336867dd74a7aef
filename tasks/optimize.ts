/**
 * optimize: every latent refined until the decoder reconstructs its image as closely as it
 * can — by Adam on the gradient of the derived loss graph, or gradient-free (Hong et al.,
 * NeurIPS 2024) — starting from the encoder's latent. Images stop on their own (relative
 * improvement below `tolerance` over `patience` steps, or `max_steps`), leave the batch, and
 * the next image takes the slot. Checkpoints make a killed run resume mid-optimization.
 *
 * Reads: `encode` latents and `preprocess` tensors; the decoder (and, gradient-free, the
 * encoder). Produces per item: `latent` (`.npy`, the best latent seen), `curve` (JSON, ≤ 200
 * points); metadata: losses, PSNR and SSIM before and after, steps, stop reason, provider.
 *
 * @module
 */
import { each, type Item } from "../lib/dag/task.ts";
import { decodeNpy, encodeNpy } from "../lib/format/npy.ts";
import { gradientEvaluator, gradientFreeEvaluator } from "../lib/model/evaluators.ts";
import { ModelError, ModelSession, openVae } from "../lib/model/vae.ts";
import { LatentNormalization } from "../lib/model/normalization.ts";
import { PRESETS } from "../lib/model/presets.ts";
import { UnsupportedOpError } from "../lib/onnx/errors.ts";
import { type OptimizeJob, optimizeLatents } from "../lib/optim/latent_optimizer.ts";
import { decodeCheckpoint } from "../lib/optim/checkpoint.ts";
import type { Config } from "../config/schema.ts";

interface Models {
  decoder: string;
  encoder?: string;
}

const where = (source: { path?: string; url?: string }) => source.path ?? source.url ?? "?";

export default each<Config, Models>({
  name: "optimize",
  deps: ["encode", "preprocess"],
  config: [
    "optimize",
    // How often state is saved, and how many images share a step: an image's latent is the same
    // either way (bit for bit at batch 1 and 4; batch fitting lowers the batch to fit memory).
    "!optimize.checkpoint_every",
    "!optimize.batch_size",
    "model.scaling_factor",
    "model.shift_factor",
    "model.latents_mean",
    "model.latents_std",
    "model.input_range",
  ],
  reads: [
    "optimize.checkpoint_every",
    "optimize.batch_size",
    "model.encoder",
    "model.decoder",
    "model.preset",
    "model.providers",
    "model.threads",
    "preprocess.size",
  ],
  version: "2",
  source: import.meta.url,
  describe: "refine every latent until the decoder matches the image",
  files: ({ optimize }) =>
    optimize.method === "gradient"
      ? { decoder: "model.decoder" }
      : { decoder: "model.decoder", encoder: "model.encoder" },
  // How far an interrupted image got: its checkpoint says the step.
  checkpointProgress: (bytes, { optimize }) => ({
    step: decodeCheckpoint(bytes, "checkpoint").adam.step,
    of: optimize.max_steps,
  }),
  prepare(ctx) {
    const { decoder, encoder } = ctx.files;
    return Promise.resolve({ state: { decoder: decoder.path, encoder: encoder?.path } });
  },
  // A batch holds latents of one shape (images of one size).
  group: (item) => ({
    latent: (item.inputs.encode.meta as { shape: number[] }).shape,
    image: (item.inputs.preprocess.meta as { shape: number[] }).shape,
  }),
  async runBatched(ctx, source, models) {
    const { model, optimize } = ctx.config;
    const shapes = source.group as { latent: number[]; image: number[] };
    const load = async (item: Item): Promise<OptimizeJob> => {
      const [latent, target, checkpoint] = await Promise.all([
        ctx.store.get(item.inputs.encode.objects.latent),
        ctx.store.get(item.inputs.preprocess.objects.tensor),
        source.context(item).loadCheckpoint(),
      ]);
      if (checkpoint) {
        const step = decodeCheckpoint(checkpoint, `checkpoint of ${item.id}`).adam.step;
        ctx.log(`${item.id}: resuming from its checkpoint at step ${step}`);
      }
      return {
        id: item.id,
        latent: decodeNpy(latent, `latent of ${item.id}`).data as Float32Array,
        target: decodeNpy(target, `tensor of ${item.id}`).data as Float32Array,
        checkpoint,
      };
    };
    const decoderLabel = `model.decoder (${where(model.decoder)})`;
    // The stored latents carry the channel count encode derived from the models.
    const normalization = LatentNormalization.of(shapes.latent[1], model);
    const settings = {
      batch: optimize.batch_size,
      fitMemory: true,
      latentShape: shapes.latent.slice(1) as [number, number, number],
      normalization,
      imageShape: shapes.image.slice(1),
      loss: optimize.loss,
      charbonnierEps: optimize.charbonnier_eps,
    };
    const runtime = { providers: model.providers, threads: model.threads, log: ctx.log };
    const evaluator = optimize.method === "gradient"
      ? await gradientEvaluator(models.decoder, decoderLabel, settings, runtime).catch(
        (e: Error) => {
          if (e instanceof ModelError) throw e;
          // Name the decoder the user configured; an op without a gradient rule has a way out.
          const hint = e instanceof UnsupportedOpError
            ? `; optimize.method "gradient_free" needs no gradient rules`
            : "";
          throw new ModelError(`${decoderLabel}: ${e.message}${hint}`);
        },
      )
      : gradientFreeEvaluator(
        await openVae({
          encoder: { path: models.encoder!, label: `model.encoder (${where(model.encoder)})` },
          decoder: { path: models.decoder, label: decoderLabel },
          model,
          size: ctx.config.preprocess.size,
          runtime,
        }),
        await ModelSession.open(models.decoder, decoderLabel, runtime, {
          float16Overflow: model.preset ? PRESETS[model.preset].fp16Overflow : undefined,
        }),
        settings,
      );
    await optimizeLatents({
      settings: {
        // The gradient graph's batch, lowered when a batch would not fit the memory.
        batch: (evaluator as { batch?: number }).batch ?? optimize.batch_size,
        latentSize: shapes.latent.reduce((a, b) => a * b, 1),
        imageShape: shapes.image.slice(1) as [number, number, number],
        lr: optimize.lr,
        schedule: optimize.schedule,
        warmupSteps: optimize.warmup_steps,
        maxSteps: optimize.max_steps,
        patience: optimize.patience,
        tolerance: optimize.tolerance,
        checkpointEvery: optimize.checkpoint_every,
        dataRange: model.input_range[1] - model.input_range[0],
      },
      evaluator,
      signal: ctx.signal,
      next: async (max, wait) =>
        await Promise.all((wait ? await source.next(max) : source.poll(max)).map(load)),
      save: (id, bytes) => source.context(id).saveCheckpoint(bytes),
      async done(id, result) {
        if (result instanceof Error) return await source.done(id, result);
        const latent = await ctx.store.put(
          encodeNpy({ dtype: "<f4", shape: shapes.latent, data: result.latent }),
        );
        const curve = await ctx.store.putJson(result.curve);
        await source.done(id, {
          objects: { latent, curve },
          meta: {
            loss_initial: result.lossInitial,
            loss_final: result.lossFinal,
            psnr_initial: result.psnrInitial,
            psnr_final: result.psnrFinal,
            ssim_initial: result.ssimInitial,
            ssim_final: result.ssimFinal,
            steps: result.steps,
            stop: result.stop,
            provider: evaluator.provider,
          },
        });
      },
    });
  },
});

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
import {
  checkEncoder,
  gradientEvaluator,
  gradientFreeEvaluator,
  ModelError,
  ModelSession,
} from "../lib/model/vae.ts";
import { fitBatchToMemory } from "../lib/onnx/batch_fit.ts";
import { UnsupportedOpError } from "../lib/onnx/errors.ts";
import { fetchSource } from "../lib/net/fetch_source.ts";
import { type OptimizeJob, optimizeLatents } from "../lib/optim/latent_optimizer.ts";
import { decodeCheckpoint } from "../lib/optim/checkpoint.ts";
import type { Config } from "../config/schema.ts";

interface Models {
  decoder: string;
  encoder?: string;
}

export default each<Config, Models>({
  name: "optimize",
  deps: ["encode", "preprocess"],
  config: ["optimize", "model.scaling_factor", "model.input_range"],
  reads: ["model.encoder", "model.decoder", "model.providers", "model.threads"],
  version: "1",
  source: import.meta.url,
  describe: "refine every latent until the decoder matches the image",
  async prepare(ctx) {
    const { model, optimize } = ctx.config;
    const opts = { signal: ctx.signal };
    const decoder = await fetchSource(ctx.store, model.decoder, "model.decoder", opts);
    if (optimize.method === "gradient") {
      const inputs: Record<string, string> = { decoder: decoder.digest };
      return { inputs, state: { decoder: decoder.path } };
    }
    const encoder = await fetchSource(ctx.store, model.encoder, "model.encoder", opts);
    await checkEncoder(encoder.path, `model.encoder (${model.encoder.path ?? model.encoder.url})`);
    return {
      inputs: { decoder: decoder.digest, encoder: encoder.digest },
      state: { decoder: decoder.path, encoder: encoder.path },
    };
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
    // A batch that would not fit the machine's memory is lowered, with one log line.
    const { batch } = optimize.method === "gradient"
      ? await fitBatchToMemory(models.decoder, {
        batch: optimize.batch_size,
        latentShape: shapes.latent.slice(1),
        loss: optimize.loss,
        withReconstruction: true,
      }, { providers: model.providers, log: ctx.log })
      : { batch: optimize.batch_size };
    const settings = {
      batch,
      latentShape: shapes.latent.slice(1) as [number, number, number],
      scalingFactor: model.scaling_factor,
      loss: optimize.loss,
      charbonnierEps: optimize.charbonnier_eps,
    };
    const runtime = { providers: model.providers, threads: model.threads, log: ctx.log };
    const evaluator = optimize.method === "gradient"
      ? await gradientEvaluator(models.decoder, settings, runtime).catch((e: Error) => {
        // Name the decoder the user configured; an op without a gradient rule has a way out.
        const hint = e instanceof UnsupportedOpError
          ? `; optimize.method "gradient_free" needs no gradient rules`
          : "";
        throw new ModelError(
          `model.decoder (${model.decoder.path ?? model.decoder.url}): ${e.message}${hint}`,
        );
      })
      : gradientFreeEvaluator(
        await ModelSession.open(models.encoder!, "encoder", runtime),
        await ModelSession.open(models.decoder, "decoder", runtime),
        settings,
      );
    await optimizeLatents({
      settings: {
        batch,
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

/**
 * The two ways of refining a stored latent, as evaluators the optimizer drives: the gradient
 * method (one run of the derived loss-and-gradient graph per step) and the gradient-free method
 * (Hong et al., NeurIPS 2024: forward passes of decoder and encoder). Only optimization reaches
 * this module, and through it the gradient graph.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { fitBatchToMemory } from "../onnx/batch_fit.ts";
import { graphFromModel } from "../onnx/graph.ts";
import { buildLossAndGradient, type LossKind } from "../onnx/loss_gradient.ts";
import { readModel } from "../onnx/model_io.ts";
import { openSession } from "../onnx/session.ts";
import type { BatchEvaluator } from "../optim/latent_optimizer.ts";
import { hasFloat16Interface, upcastModel } from "./fp16.ts";
import { ModelError, type ModelSession, type RuntimeOptions } from "./model_session.ts";
import type { LatentNormalization } from "./normalization.ts";
import { encodeImages, type OpenedVae } from "./vae.ts";

/** Settings shared by both evaluators. */
export interface EvaluatorSettings {
  batch: number;
  /** Stored latent shape without the batch dim, [C, h, w]. */
  latentShape: [number, number, number];
  normalization: LatentNormalization;
  loss: LossKind;
  charbonnierEps: number;
  /** The images' shape [3, H, W], checked against what the decoder gives. */
  imageShape?: number[];
  /**
   * Lower `batch` (with one log line) when the loss-and-gradient graph of a batch would not
   * fit the memory available (see `lib/onnx/batch_fit.ts`); the evaluator says the batch it runs.
   */
  fitMemory?: boolean;
}

/**
 * The gradient method: one run of the derived loss-and-gradient graph per step. The graph
 * takes the stored latent and undoes the normalization in front of the decoder, so Adam runs
 * on the stored latent, as training code sees it, and the gradient is the stored latent's.
 *
 * @example
 * ```ts
 * declare const settings: EvaluatorSettings, runtime: RuntimeOptions;
 * const evaluator = await gradientEvaluator("vae_decoder.onnx", "model.decoder", settings, runtime);
 * ```
 */
export async function gradientEvaluator(
  decoderPath: string,
  label: string,
  settings: EvaluatorSettings,
  runtime: RuntimeOptions,
): Promise<BatchEvaluator & { provider: string; batch: number }> {
  const { latentShape, normalization } = settings;
  const model = await readModel(decoderPath);
  if (hasFloat16Interface(model)) {
    upcastModel(model);
    runtime.log(`${label} is float16; its loss-and-gradient graph runs in float32`);
  }
  const decoder = normalization.decoderFromStored(graphFromModel(model));
  // A batch that would not fit the machine's memory is lowered, with one log line.
  const { batch } = settings.fitMemory
    ? await fitBatchToMemory(decoder, {
      batch: settings.batch,
      latentShape,
      loss: settings.loss,
      charbonnierEps: settings.charbonnierEps,
      withReconstruction: true,
    }, { providers: runtime.providers, log: runtime.log })
    : settings;
  const built = await buildLossAndGradient(decoder, {
    batch,
    latentShape,
    loss: settings.loss,
    charbonnierEps: settings.charbonnierEps,
    withReconstruction: true,
  });
  const image = built.imageDims.slice(1);
  if (settings.imageShape && image.join() !== settings.imageShape.join()) {
    throw new ModelError(
      `${label} maps latents [${batch}, ${latentShape.join(", ")}] to images [${
        built.imageDims.join(", ")
      }], but the images are [${batch}, ${settings.imageShape.join(", ")}]`,
    );
  }
  const { session, provider } = await openSession(built.bytes, {
    providers: runtime.providers,
    intraOpThreads: runtime.threads,
    log: runtime.log,
    // The graph's own session options (no memory pattern: see LossGradientGraph).
    extra: built.sessionOptions,
  });
  runtime.log(`loss and gradient graph: running on ${provider}`);
  const latentDims = [batch, ...latentShape];
  return {
    provider,
    batch,
    async evaluate(latents, targets) {
      const out = await session.run({
        [built.inputs.latent]: new ort.Tensor("float32", latents, latentDims),
        [built.inputs.target]: new ort.Tensor("float32", targets, built.imageDims),
      });
      return {
        losses: out[built.outputs.loss].data as Float32Array,
        directions: out[built.outputs.gradient].data as Float32Array,
        reconstructions: out[built.outputs.reconstruction!].data as Float32Array,
      };
    },
  };
}

/**
 * The gradient-free method (Hong et al., NeurIPS 2024): the update direction is
 * E(D(z)) − E(x) in the stored space, with E(x) the encoder's latent of the image; forward
 * passes only.
 *
 * @example
 * ```ts
 * declare const vae: OpenedVae, decoder: ModelSession, settings: EvaluatorSettings;
 * const evaluator = gradientFreeEvaluator(vae, decoder, settings);
 * ```
 */
export function gradientFreeEvaluator(
  vae: OpenedVae,
  decoder: ModelSession,
  settings: EvaluatorSettings,
): BatchEvaluator & { provider: string } {
  const { batch, latentShape, normalization } = settings;
  const latentDims = [batch, ...latentShape];
  const plane = latentShape[1] * latentShape[2];
  const z = new Float32Array(batch * latentShape[0] * plane);
  return {
    provider: decoder.provider,
    async evaluate(latents, targets, anchors) {
      normalization.denormalize(latents, plane, z);
      const recon = await decoder.run(z, latentDims);
      if (recon.data.length !== targets.length) {
        throw new ModelError(
          `${decoder.label}: expected an image of ${targets.length / batch} values per latent, ` +
            `found shape [${recon.dims.join(", ")}]`,
        );
      }
      const { latents: again } = await encodeImages(vae, recon.data, recon.dims);
      const directions = new Float32Array(latents.length);
      for (let k = 0; k < latents.length; k++) directions[k] = again[k] - anchors[k];
      const perImage = targets.length / batch;
      const losses = new Float32Array(batch);
      for (let i = 0; i < batch; i++) {
        let sum = 0;
        for (let k = i * perImage; k < (i + 1) * perImage; k++) {
          const d = recon.data[k] - targets[k];
          sum += settings.loss === "l2"
            ? d * d
            : settings.loss === "l1"
            ? Math.abs(d)
            : Math.sqrt(d * d + settings.charbonnierEps ** 2);
        }
        losses[i] = sum / perImage;
      }
      return { losses, directions, reconstructions: recon.data };
    },
  };
}

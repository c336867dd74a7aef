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
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * import { writeModel } from "../onnx/model_io.ts";
 * import { LatentNormalization } from "./normalization.ts";
 * // A tiny decoder: nearest upsampling by 8 and a mix of the 4 channels into 3.
 * const dir = await Deno.makeTempDir();
 * const dec = new GraphBuilder();
 * const latent = dec.input("latent_sample", 1, ["n", 4, "y", "x"]);
 * const up = dec.node("Resize", [latent, "", dec.constant(1, [4], [1, 1, 8, 8])]);
 * const mix = dec.constant(1, [3, 4, 1, 1], new Array(12).fill(0.25));
 * dec.output(dec.node("Conv", [up, mix]), 1, ["n", 3, "h", "w"]);
 * await writeModel(`${dir}/vae_decoder.onnx`, dec.graph);
 * try {
 *   const settings = {
 *     batch: 1,
 *     latentShape: [4, 2, 2] as [number, number, number],
 *     normalization: LatentNormalization.of(4, { scaling_factor: 1 }),
 *     loss: "l2" as const,
 *     charbonnierEps: 1e-3,
 *   };
 *   const evaluator = await gradientEvaluator(`${dir}/vae_decoder.onnx`, "model.decoder", settings, {
 *     providers: ["cpu"],
 *     log: () => {},
 *   });
 *   // Latents of 1 decode to 1 everywhere: against a mid-grey target (0), an L2 loss of 1.
 *   const latents = new Float32Array(16).fill(1);
 *   const out = await evaluator.evaluate(latents, new Float32Array(3 * 16 * 16), latents);
 *   assert.ok(Math.abs(out.losses[0] - 1) < 1e-6);
 *   assert.ok(out.directions.every((g) => g > 0)); // lowering the latent lowers the loss
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
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
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * import { writeModel } from "../onnx/model_io.ts";
 * import { ModelSession } from "./model_session.ts";
 * import { openVae } from "./vae.ts";
 * // A tiny VAE: 8×8 patches averaged into 4 channels, and back by nearest upsampling.
 * const dir = await Deno.makeTempDir();
 * const enc = new GraphBuilder();
 * const image = enc.input("sample", 1, ["n", 3, "h", "w"]);
 * const pool = enc.constant(1, [4, 3, 8, 8], new Array(4 * 3 * 64).fill(1 / 192));
 * enc.output(enc.node("Conv", [image, pool], { strides: [8, 8] }), 1, ["n", 4, "y", "x"]);
 * await writeModel(`${dir}/vae_encoder.onnx`, enc.graph);
 * const dec = new GraphBuilder();
 * const latent = dec.input("latent_sample", 1, ["n", 4, "y", "x"]);
 * const up = dec.node("Resize", [latent, "", dec.constant(1, [4], [1, 1, 8, 8])]);
 * const mix = dec.constant(1, [3, 4, 1, 1], new Array(12).fill(0.25));
 * dec.output(dec.node("Conv", [up, mix]), 1, ["n", 3, "h", "w"]);
 * await writeModel(`${dir}/vae_decoder.onnx`, dec.graph);
 * try {
 *   const runtime = { providers: ["cpu"], log: () => {} };
 *   const vae = await openVae({
 *     encoder: { path: `${dir}/vae_encoder.onnx`, label: "model.encoder" },
 *     decoder: { path: `${dir}/vae_decoder.onnx`, label: "model.decoder" },
 *     model: { scaling_factor: 1, input_range: [-1, 1] },
 *     size: 64,
 *     runtime,
 *   });
 *   const decoder = await ModelSession.open(`${dir}/vae_decoder.onnx`, "model.decoder", runtime);
 *   const settings = {
 *     batch: 1,
 *     latentShape: [4, 2, 2] as [number, number, number],
 *     normalization: vae.normalization,
 *     loss: "l2" as const,
 *     charbonnierEps: 1e-3,
 *   };
 *   const evaluator = gradientFreeEvaluator(vae, decoder, settings);
 *   const anchors = new Float32Array(16); // the encoder's latent of the (mid-grey) image
 *   const out = await evaluator.evaluate(new Float32Array(16).fill(1), new Float32Array(3 * 16 * 16), anchors);
 *   assert.ok(out.directions.every((d) => Math.abs(d - 1) < 1e-6)); // E(D(z)) − E(x)
 *   await decoder.release();
 *   await vae.encoder.release();
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
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

/**
 * The VAE as latentforge uses it: an encoder that gives deterministic latents in the stored
 * (normalized) space, a decoder, and the two ways of refining a stored latent (the derived
 * loss-and-gradient graph, or gradient-free encoder/decoder passes), all on ONNX Runtime
 * sessions opened with the configured providers.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { graphFromModel } from "../onnx/graph.ts";
import { readModel } from "../onnx/model_io.ts";
import { fitBatchToMemory } from "../onnx/batch_fit.ts";
import { buildLossAndGradient, type LossKind } from "../onnx/loss_gradient.ts";
import { openSession } from "../onnx/session.ts";
import type { BatchEvaluator } from "../optim/latent_optimizer.ts";
import { hasFloat16Interface, upcastModel } from "./fp16.ts";
import { GeometryError, probeGeometry, type VaeGeometry } from "./geometry.ts";
import { ModelError, ModelSession, type RuntimeOptions } from "./model_session.ts";
import {
  LatentNormalization,
  NormalizationError,
  type NormalizationSettings,
} from "./normalization.ts";
import { type PresetName, PRESETS } from "./presets.ts";

export { ModelError, ModelSession, type RuntimeOptions };

const SAMPLING_OPS = new Set([
  "RandomNormalLike",
  "RandomNormal",
  "RandomUniformLike",
  "RandomUniform",
  "Multinomial",
]);

/**
 * Checks an encoder can give deterministic latents: a graph that samples from the latent
 * distribution is rejected with a message saying to export its mean.
 *
 * @example
 * ```ts
 * await checkEncoder("vae_encoder.onnx", "model.encoder (vae_encoder.onnx)");
 * ```
 */
export async function checkEncoder(path: string, label: string): Promise<void> {
  let model;
  try {
    model = await readModel(path);
  } catch (e) {
    // The path is the model's copy in the store; the label names the file the user gave.
    const reason = (e as Error).message.replaceAll(`${path}: `, "").replaceAll(path, "");
    throw new ModelError(`${label}: ${reason}`);
  }
  const sampler = (model.graph?.node ?? []).find((n) => SAMPLING_OPS.has(n.opType ?? ""));
  if (sampler) {
    throw new ModelError(
      `${label}: the encoder samples from the latent distribution (${sampler.opType} node ` +
        `"${sampler.name}"), so its latents would change from run to run; export the ` +
        `distribution's mean instead (optimum's vae_encoder export gives the mean)`,
    );
  }
}

/** The model part of a config, resolved (see `model_config.ts`). */
export interface ModelSettings extends NormalizationSettings {
  preset?: PresetName;
  input_range: [number, number];
}

/** An encoder ready to give stored latents. */
export interface OpenedVae {
  encoder: ModelSession;
  geometry: VaeGeometry;
  normalization: LatentNormalization;
}

/**
 * Opens the encoder (and, for the probe only, the decoder), derives the geometry, checks it
 * against the preset and the image size, and resolves the normalization. Every problem is one
 * {@link ModelError} naming the files the user configured.
 *
 * @example
 * ```ts
 * const vae = await openVae({
 *   encoder: { path: "vae_encoder.onnx", label: "model.encoder (vae_encoder.onnx)" },
 *   decoder: { path: "vae_decoder.onnx", label: "model.decoder (vae_decoder.onnx)" },
 *   model: { preset: "flux1", scaling_factor: 0.3611, shift_factor: 0.1159, input_range: [-1, 1] },
 *   size: 256,
 *   runtime: { providers: ["cpu"], log: console.log },
 * });
 * ```
 */
export async function openVae(
  { encoder, decoder, model, size, runtime }: {
    encoder: { path: string; label: string };
    decoder: { path: string; label: string };
    model: ModelSettings;
    size: number;
    runtime: RuntimeOptions;
  },
): Promise<OpenedVae> {
  await checkEncoder(encoder.path, encoder.label);
  const preset = model.preset ? { name: model.preset, ...PRESETS[model.preset] } : undefined;
  const options = { float16Overflow: preset?.fp16Overflow };
  const enc = await ModelSession.open(encoder.path, encoder.label, runtime, options);
  let dec: ModelSession | undefined;
  try {
    dec = await ModelSession.open(
      decoder.path,
      decoder.label,
      { ...runtime, log: () => {} },
      options,
    );
    const geometry = await probeGeometry({
      encoder: enc,
      decoder: dec,
      size,
      inputRange: model.input_range,
      preset,
    });
    const normalization = LatentNormalization.of(geometry.channels, model);
    return { encoder: enc, geometry, normalization };
  } catch (e) {
    await enc.release();
    if (e instanceof GeometryError || e instanceof NormalizationError) {
      throw new ModelError(e.message);
    }
    throw e;
  } finally {
    await dec?.release();
  }
}

/**
 * Checks images of `width`×`height` pixels have whole latents: both sides multiples of the
 * spatial factor (a bucket's sides follow `preprocess.buckets.step`).
 *
 * @example
 * ```ts
 * declare const vae: OpenedVae;
 * checkImageSides(vae, 192, 320);
 * ```
 */
export function checkImageSides(vae: OpenedVae, height: number, width: number): void {
  const f = vae.geometry.factor;
  if (height % f !== 0 || width % f !== 0) {
    throw new ModelError(
      `images of ${width}×${height} pixels have sides that are not multiples of ${f}, the ` +
        `spatial factor of ${vae.encoder.label}: make preprocess.size (and ` +
        `preprocess.buckets.step) multiples of ${f}`,
    );
  }
}

/**
 * Checks the bucket step is a multiple of the spatial factor, before any image is encoded: every
 * bucket's sides are multiples of the step, so every bucket then has whole latents.
 *
 * @example
 * ```ts
 * declare const vae: OpenedVae;
 * checkBucketStep(vae, 64);
 * ```
 */
export function checkBucketStep(vae: OpenedVae, step: number): void {
  const f = vae.geometry.factor;
  if (step % f !== 0) {
    throw new ModelError(
      `preprocess.buckets.step ${step} is not a multiple of ${f}, the spatial factor of ` +
        `${vae.encoder.label}: bucket sides must be multiples of ${f} for whole latents`,
    );
  }
}

/**
 * Encodes a batch of images into stored latents: the first C channels of an encoder giving
 * mean ‖ log-variance, then the normalization.
 *
 * @example
 * ```ts
 * declare const vae: OpenedVae, images: Float32Array;
 * const { latents, dims } = await encodeImages(vae, images, [4, 3, 256, 256]);
 * ```
 */
export async function encodeImages(
  vae: OpenedVae,
  images: Float32Array,
  dims: number[],
): Promise<{ latents: Float32Array; dims: number[] }> {
  const { encoder, geometry, normalization } = vae;
  const out = await encoder.run(images, dims);
  const [n, e, h, w] = out.dims;
  const C = geometry.channels;
  const expected = [
    dims[0],
    geometry.encoderChannels,
    dims[2] / geometry.factor,
    dims[3] / geometry.factor,
  ];
  if (out.dims.length !== 4 || out.dims.join() !== expected.join()) {
    throw new ModelError(
      `${encoder.label}: expected an output of shape [${expected.join(", ")}], found [${
        out.dims.join(", ")
      }]`,
    );
  }
  const plane = h * w;
  const z = e === C ? out.data : new Float32Array(n * C * plane);
  if (e !== C) {
    for (let i = 0; i < n; i++) {
      z.set(out.data.subarray(i * e * plane, (i * e + C) * plane), i * C * plane);
    }
  }
  return { latents: normalization.normalize(z, plane), dims: [n, C, h, w] };
}

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

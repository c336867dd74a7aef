/**
 * The VAE as latentforge uses it: an encoder that gives deterministic latents, a decoder, and
 * the two ways of refining a latent (the derived loss-and-gradient graph, or gradient-free
 * encoder/decoder passes), all on ONNX Runtime sessions opened with the configured providers.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { graphFromModel } from "../onnx/graph.ts";
import { readModel } from "../onnx/model_io.ts";
import { buildLossAndGradient, type LossKind } from "../onnx/loss_gradient.ts";
import { openSession } from "../onnx/session.ts";
import type { BatchEvaluator } from "../optim/latent_optimizer.ts";

/** Raised for a model latentforge cannot use as configured. */
export class ModelError extends Error {
  override readonly name = "ModelError";
}

/** How sessions are opened. */
export interface RuntimeOptions {
  providers: string[];
  threads?: number;
  log: (line: string) => void;
}

const SAMPLING_OPS = new Set([
  "RandomNormalLike",
  "RandomNormal",
  "RandomUniformLike",
  "RandomUniform",
  "Multinomial",
]);

/** One single-input, single-output model on a session. */
export class ModelSession {
  readonly session: ort.InferenceSession;
  readonly provider: string;
  readonly label: string;

  private constructor(session: ort.InferenceSession, provider: string, label: string) {
    this.session = session;
    this.provider = provider;
    this.label = label;
  }

  /** Opens a model file; the provider used is logged. */
  static async open(path: string, label: string, options: RuntimeOptions): Promise<ModelSession> {
    const { session, provider } = await openSession(path, {
      providers: options.providers,
      intraOpThreads: options.threads,
      log: options.log,
    });
    options.log(`${label}: running on ${provider}`);
    if (session.inputNames.length !== 1 || session.outputNames.length < 1) {
      throw new ModelError(
        `${label}: expected one input, found ${session.inputNames.length} (${session.inputNames})`,
      );
    }
    return new ModelSession(session, provider, label);
  }

  /** Runs the model on one float32 tensor and returns its first output. */
  async run(data: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> {
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run({
        [this.session.inputNames[0]]: new ort.Tensor("float32", data, dims),
      });
    } catch (e) {
      throw new ModelError(
        `${this.label}: cannot run on input [${dims.join(", ")}]: ${
          (e as Error).message.split("\n")[0]
        }`,
      );
    }
    const tensor = out[this.session.outputNames[0]];
    return { data: tensor.data as Float32Array, dims: [...tensor.dims] };
  }
}

/**
 * Checks an encoder can give deterministic latents: a graph that samples from the latent
 * distribution is rejected with a message saying to export its mean.
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
  const graph = graphFromModel(model);
  const sampler = graph.nodes.find((n) => SAMPLING_OPS.has(n.opType));
  if (sampler) {
    throw new ModelError(
      `${label}: the encoder samples from the latent distribution (${sampler.opType} node ` +
        `"${sampler.name}"), so its latents would change from run to run; export the ` +
        `distribution's mean instead (optimum's vae_encoder export gives the mean)`,
    );
  }
}

/**
 * Encodes a batch of images: 8 output channels (mean and log-variance) give their first 4; the
 * result is multiplied by the scaling factor.
 */
export async function encodeImages(
  encoder: ModelSession,
  images: Float32Array,
  dims: number[],
  scalingFactor: number,
): Promise<{ latents: Float32Array; dims: number[] }> {
  const out = await encoder.run(images, dims);
  const [n, c, h, w] = out.dims;
  if (out.dims.length !== 4 || n !== dims[0] || (c !== 4 && c !== 8)) {
    throw new ModelError(
      `${encoder.label}: expected an output of shape [${dims[0]}, 4 or 8, h, w], found [${
        out.dims.join(", ")
      }]`,
    );
  }
  const plane = h * w;
  const latents = new Float32Array(n * 4 * plane);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 4 * plane; k++) {
      latents[i * 4 * plane + k] = out.data[i * c * plane + k] * scalingFactor;
    }
  }
  return { latents, dims: [n, 4, h, w] };
}

/** Settings shared by both evaluators. */
export interface EvaluatorSettings {
  batch: number;
  latentShape: [number, number, number];
  scalingFactor: number;
  loss: LossKind;
  charbonnierEps: number;
}

/**
 * The gradient method: one run of the derived loss-and-gradient graph per step. Latents are
 * optimized in the scaled space the dataset stores; the decoder sees latent / scaling factor.
 */
export async function gradientEvaluator(
  decoderPath: string,
  settings: EvaluatorSettings,
  runtime: RuntimeOptions,
): Promise<BatchEvaluator & { provider: string }> {
  const { batch, latentShape, scalingFactor } = settings;
  const built = await buildLossAndGradient(decoderPath, {
    batch,
    latentShape,
    loss: settings.loss,
    charbonnierEps: settings.charbonnierEps,
    withReconstruction: true,
  });
  const { session, provider } = await openSession(built.bytes, {
    providers: runtime.providers,
    intraOpThreads: runtime.threads,
    log: runtime.log,
  });
  runtime.log(`loss and gradient graph: running on ${provider}`);
  const latentDims = [batch, ...latentShape];
  const unscaled = new Float32Array(batch * latentShape[0] * latentShape[1] * latentShape[2]);
  return {
    provider,
    async evaluate(latents, targets) {
      for (let k = 0; k < latents.length; k++) unscaled[k] = latents[k] / scalingFactor;
      const out = await session.run({
        [built.inputs.latent]: new ort.Tensor("float32", unscaled, latentDims),
        [built.inputs.target]: new ort.Tensor("float32", targets, built.imageDims),
      });
      const grad = out[built.outputs.gradient].data as Float32Array;
      // d loss / d z = d loss / d (z / s) · 1 / s
      const directions = new Float32Array(grad.length);
      for (let k = 0; k < grad.length; k++) directions[k] = grad[k] / scalingFactor;
      return {
        losses: out[built.outputs.loss].data as Float32Array,
        directions,
        reconstructions: out[built.outputs.reconstruction!].data as Float32Array,
      };
    },
  };
}

/**
 * The gradient-free method (Hong et al., NeurIPS 2024): the update direction is
 * E(D(z)) − E(x), with E(x) the encoder's latent of the image; forward passes only.
 */
export function gradientFreeEvaluator(
  encoder: ModelSession,
  decoder: ModelSession,
  settings: EvaluatorSettings,
): BatchEvaluator & { provider: string } {
  const { batch, latentShape, scalingFactor } = settings;
  const latentDims = [batch, ...latentShape];
  const unscaled = new Float32Array(batch * latentShape[0] * latentShape[1] * latentShape[2]);
  return {
    provider: decoder.provider,
    async evaluate(latents, targets, anchors) {
      for (let k = 0; k < latents.length; k++) unscaled[k] = latents[k] / scalingFactor;
      const recon = await decoder.run(unscaled, latentDims);
      if (recon.data.length !== targets.length) {
        throw new ModelError(
          `${decoder.label}: expected an image of ${targets.length / batch} values per latent, ` +
            `found shape [${recon.dims.join(", ")}]`,
        );
      }
      const { latents: again } = await encodeImages(encoder, recon.data, recon.dims, scalingFactor);
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

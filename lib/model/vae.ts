/**
 * The VAE as latentforge uses it: an encoder that gives deterministic latents in the stored
 * (normalized) space, checked against its decoder, on ONNX Runtime sessions opened with the
 * configured providers. The two ways of refining a stored latent are in `evaluators.ts`: this
 * module, which encoding runs, reaches no gradient code.
 *
 * @module
 */
import { ModelIoError } from "../onnx/errors.ts";
import { readModel } from "../onnx/model_io.ts";
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
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * import { writeModel } from "../onnx/model_io.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   // An encoder that adds noise to its latent: sampled, not the distribution's mean.
 *   const b = new GraphBuilder();
 *   const image = b.input("sample", 1, [1, 3, 8, 8]);
 *   b.output(b.node("Add", [image, b.node("RandomNormalLike", [image])]), 1, [1, 3, 8, 8]);
 *   await writeModel(`${dir}/vae_encoder.onnx`, b.graph);
 *   await assert.rejects(
 *     checkEncoder(`${dir}/vae_encoder.onnx`, "model.encoder (vae_encoder.onnx)"),
 *     /samples from the latent distribution \(RandomNormalLike node/,
 *   );
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function checkEncoder(path: string, label: string): Promise<void> {
  let model;
  try {
    model = await readModel(path);
  } catch (e) {
    if (!(e instanceof ModelIoError)) throw e;
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
  /** Latent channels C: checked against the decoder, or C for an encoder without one. */
  latent_channels?: number;
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
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * import { writeModel } from "../onnx/model_io.ts";
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
 *   assert.deepEqual(vae.geometry, { channels: 4, encoderChannels: 4, factor: 8, imageChannels: 3 });
 *   checkImageSides(vae, 192, 320); // whole latents
 *   assert.throws(() => checkBucketStep(vae, 60), ModelError); // 60 is no multiple of 8
 *   await vae.encoder.release();
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function openVae(
  { encoder, decoder, model, size, runtime }: {
    encoder: { path: string; label: string };
    /** Checks the geometry when given; without it, C comes from the config or preset. */
    decoder?: { path: string; label: string };
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
    dec = decoder && await ModelSession.open(
      decoder.path,
      decoder.label,
      { ...runtime, log: () => {} },
      options,
    );
    const geometry = await probeGeometry({
      encoder: enc,
      decoder: dec,
      channels: model.latent_channels,
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
 * ```ts ignore
 * // Needs an opened VAE (two models and their sessions); openVae's example opens one and
 * // calls this on it.
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
 * ```ts ignore
 * // Needs an opened VAE (two models and their sessions); openVae's example opens one and
 * // calls this on it.
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
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * import { writeModel } from "../onnx/model_io.ts";
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
 *   const { latents, dims } = await encodeImages(vae, new Float32Array(3 * 16 * 24).fill(0.5), [
 *     1,
 *     3,
 *     16,
 *     24,
 *   ]);
 *   assert.deepEqual(dims, [1, 4, 2, 3]);
 *   assert.ok(Math.abs(latents[0] - 0.5) < 1e-6); // the patch average, unscaled
 *   await vae.encoder.release();
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
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

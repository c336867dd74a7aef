/**
 * The latent geometry of a VAE, read from its two models rather than assumed: the latent
 * channels C are the decoder's input channels; an encoder giving C channels gives the latent,
 * one giving 2C gives mean ‖ log-variance (the mean is the latent); the spatial factor is the
 * ratio of image to latent side. Both models run once on a small probe image, so a pair that
 * does not fit together, or a model that cannot run, is one error naming both files and shapes.
 *
 * @module
 */
import { ModelError, type ModelSession } from "./model_session.ts";
import type { Preset } from "./presets.ts";

/** Raised when the models do not fit each other, the preset or the image size. */
export class GeometryError extends Error {
  override readonly name = "GeometryError";
}

/** What the models say about their latents. */
export interface VaeGeometry {
  /** Latent channels C: the decoder's input channels. */
  channels: number;
  /** Encoder output channels: C (the latent) or 2C (mean ‖ log-variance). */
  encoderChannels: number;
  /** Image side / latent side (8 for SD-style VAEs, 16, 32 …). */
  factor: number;
  /** Image channels the decoder gives (and the encoder takes). */
  imageChannels: number;
}

/** Options of {@link probeGeometry}. */
export interface ProbeOptions {
  encoder: ModelSession;
  /** The decoder, whose input gives C; without one, `channels` (or the preset's) is C. */
  decoder?: ModelSession;
  /** Latent channels C as the config gives them (`model.latent_channels`): the decoder's must match. */
  channels?: number;
  /** The image side the dataset uses (`preprocess.size`), checked against the factor. */
  size: number;
  /** The configured input range; the probe image is its middle grey. */
  inputRange: [number, number];
  /** The configured preset, whose channels and factor the models must have. */
  preset?: { name: string } & Pick<Preset, "latentChannels" | "spatialFactor">;
}

/** The probe image side when the encoder accepts any size: every factor up to 64 divides it. */
const PROBE_SIDE = 64;

const shape = (dims: readonly (number | string)[]) => `[${dims.join(", ")}]`;

function staticDim(d: number | string | undefined): number | undefined {
  return typeof d === "number" && d > 0 ? d : undefined;
}

/**
 * Runs the decoder on a zero latent of the encoder's latent size: with the channels the decoder
 * declares, else with the encoder's channels, then half of them (mean ‖ log-variance).
 */
async function decodeLatent(
  decoder: ModelSession,
  encodedDims: number[],
  names: { encoder: string; probe: number[] },
): Promise<{ channels: number; latentDims: number[]; decoded: { dims: number[] } }> {
  const [, e, h, w] = encodedDims;
  const declaredChannels = staticDim(decoder.input.dims[1]);
  // A decoder that does not declare its channels is tried with the latent, then half of it.
  const candidates = declaredChannels !== undefined
    ? [declaredChannels]
    : e % 2 === 0
    ? [e, e / 2]
    : [e];
  if (declaredChannels !== undefined && declaredChannels !== e && 2 * declaredChannels !== e) {
    throw new GeometryError(
      `${names.encoder} gives latents ${shape(encodedDims)} and ${decoder.label} takes ` +
        `${shape(decoder.input.dims)}: expected the encoder to give the decoder's ` +
        `${declaredChannels} channels (the latent) or ${2 * declaredChannels} (mean and ` +
        `log-variance), found ${e}`,
    );
  }
  let latentDims = [1, candidates[0], h, w];
  for (const c of candidates) {
    latentDims = [1, c, h, w];
    try {
      return {
        channels: c,
        latentDims,
        decoded: await decoder.run(new Float32Array(c * h * w), latentDims),
      };
    } catch (error) {
      // A decoder that cannot run on this latent says so as a ModelError: try the next.
      if (!(error instanceof ModelError)) throw error;
    }
  }
  throw new GeometryError(
    `${decoder.label} (declared input ${shape(decoder.input.dims)}) cannot decode the latent ` +
      `${shape(latentDims)} that ${names.encoder} gives for an image ${shape(names.probe)}`,
  );
}

/**
 * Runs encoder and decoder once and derives the geometry; throws one {@link GeometryError}
 * naming both models and their shapes when they do not fit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * import { writeModel } from "../onnx/model_io.ts";
 * import { ModelSession } from "./model_session.ts";
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
 *   const encoder = await ModelSession.open(`${dir}/vae_encoder.onnx`, "model.encoder", runtime);
 *   const decoder = await ModelSession.open(`${dir}/vae_decoder.onnx`, "model.decoder", runtime);
 *   const g = await probeGeometry({ encoder, decoder, size: 256, inputRange: [-1, 1] });
 *   assert.deepEqual([g.channels, g.factor], [4, 8]);
 *   await assert.rejects(
 *     probeGeometry({ encoder, decoder, size: 100, inputRange: [-1, 1] }),
 *     /preprocess.size 100 is not a multiple of 8/,
 *   );
 *   await encoder.release();
 *   await decoder.release();
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function probeGeometry(
  { encoder, decoder, channels: configured, size, inputRange, preset }: ProbeOptions,
): Promise<VaeGeometry> {
  const inDims = encoder.input.dims;
  const imageChannels = staticDim(inDims[1]) ?? 3;
  const fixedH = staticDim(inDims[2]), fixedW = staticDim(inDims[3]);
  if ((fixedH !== undefined && fixedH !== size) || (fixedW !== undefined && fixedW !== size)) {
    throw new GeometryError(
      `${encoder.label} takes images of ${shape(inDims)}, but preprocess.size is ${size}`,
    );
  }
  const side = fixedH ?? PROBE_SIDE;
  const probeDims = [1, imageChannels, side, side];
  const grey = (inputRange[0] + inputRange[1]) / 2;
  const encoded = await encoder.run(
    new Float32Array(side * side * imageChannels).fill(grey),
    probeDims,
  );
  const [n, e, h, w] = encoded.dims;
  if (encoded.dims.length !== 4 || n !== 1 || h !== w || side % h !== 0) {
    throw new GeometryError(
      `${encoder.label} maps ${shape(probeDims)} to ${shape(encoded.dims)}: expected a latent ` +
        `[1, C, h, h] with h dividing ${side}`,
    );
  }
  const factor = side / h;
  if (size % factor !== 0) {
    throw new GeometryError(
      `preprocess.size ${size} is not a multiple of ${factor}, the spatial factor of ` +
        `${encoder.label} (it maps ${shape(probeDims)} to ${shape(encoded.dims)})`,
    );
  }
  if (decoder === undefined) {
    const channels = encoderOnlyChannels(e, configured, preset);
    if (preset && preset.spatialFactor !== factor) {
      throw new GeometryError(
        `model.preset ${preset.name} describes ${preset.spatialFactor}× downsampling, but ` +
          `${encoder.label} downsamples ${factor}× (it maps ${shape(probeDims)} to ` +
          `${shape(encoded.dims)}): choose the preset of this model, or give scaling_factor ` +
          `and latent_channels without a preset`,
      );
    }
    return { channels, encoderChannels: e, factor, imageChannels };
  }

  const { channels, latentDims, decoded } = await decodeLatent(decoder, encoded.dims, {
    encoder: encoder.label,
    probe: probeDims,
  });
  const expected = [1, imageChannels, side, side];
  if (decoded.dims.join() !== expected.join()) {
    const up = decoded.dims.length === 4 && decoded.dims[2] % h === 0
      ? ` (${decoded.dims[2] / h}× upsampling against the encoder's ${factor}×)`
      : "";
    throw new GeometryError(
      `${encoder.label} maps ${shape(probeDims)} to ${shape(encoded.dims)}, but ` +
        `${decoder.label} maps ${shape(latentDims)} to ${shape(decoded.dims)}${up}: expected ` +
        `${shape(expected)}`,
    );
  }
  if (preset && (preset.latentChannels !== channels || preset.spatialFactor !== factor)) {
    throw new GeometryError(
      `model.preset ${preset.name} describes ${preset.latentChannels} latent channels at ` +
        `${preset.spatialFactor}× downsampling, but ${decoder.label} takes ${channels} channels ` +
        `and ${encoder.label} downsamples ${factor}× (it maps ${shape(probeDims)} to ` +
        `${shape(encoded.dims)}): choose the preset of these models, or give scaling_factor ` +
        `(and shift_factor) without a preset`,
    );
  }
  if (configured !== undefined && configured !== channels) {
    throw new GeometryError(
      `model.latent_channels is ${configured}, but ${decoder.label} takes ${channels} channels ` +
        `(it decodes ${shape(latentDims)}): set it to ${channels}, or leave it out`,
    );
  }
  return { channels, encoderChannels: e, factor, imageChannels };
}

/**
 * C without a decoder: the configured channels, else the preset's; the encoder must give C
 * (the latent) or 2C (mean ‖ log-variance).
 */
function encoderOnlyChannels(
  encoderChannels: number,
  configured: number | undefined,
  preset: ProbeOptions["preset"],
): number {
  if (configured !== undefined && preset && configured !== preset.latentChannels) {
    throw new GeometryError(
      `model.latent_channels is ${configured}, but model.preset ${preset.name} describes ` +
        `${preset.latentChannels} latent channels`,
    );
  }
  const channels = configured ?? preset?.latentChannels;
  const from = configured !== undefined ? "model.latent_channels" : `model.preset ${preset?.name}`;
  if (channels === undefined) {
    throw new GeometryError(
      `without model.decoder, the latent channels come from model.latent_channels or ` +
        `model.preset: give one of them`,
    );
  }
  if (encoderChannels !== channels && encoderChannels !== 2 * channels) {
    throw new GeometryError(
      `${from} says ${channels} latent channels: expected the encoder to give ${channels} ` +
        `(the latent) or ${2 * channels} (mean and log-variance), found ${encoderChannels}`,
    );
  }
  return channels;
}

/**
 * Latent normalization: how the encoder's latent z becomes the stored latent that a diffusion
 * model trains on, and back. With per-channel `latents_mean`/`latents_std` (diffusers' VAEs that
 * carry them), z is standardized first; then the diffusers convention applies:
 *
 *   stored = ((z − mean_c) / std_c − shift) × scale
 *
 * which is `(z − shift) × scale` without mean/std and `(z − mean) / std × scale` without shift.
 * Per channel this is one affine map, stored = z · gain_c + offset_c.
 *
 * @module
 */
import { GraphBuilder } from "../onnx/graph_builder.ts";
import type { Graph } from "../onnx/graph.ts";
import { DataType } from "../onnx/tensor.ts";

/** Raised when normalization settings do not fit the model (e.g. one mean per channel). */
export class NormalizationError extends Error {
  override readonly name = "NormalizationError";
}

/** The numbers of a normalization, as a config gives them. */
export interface NormalizationSettings {
  scaling_factor: number;
  shift_factor?: number;
  latents_mean?: number[];
  latents_std?: number[];
}

/** A resolved per-channel normalization of C-channel latents. */
export class LatentNormalization {
  readonly channels: number;
  readonly scale: number;
  readonly shift: number;
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
  /** stored = z · gain[c] + offset[c]. */
  readonly gain: Float64Array;
  readonly offset: Float64Array;

  private constructor(
    channels: number,
    settings: NormalizationSettings,
  ) {
    this.channels = channels;
    this.scale = settings.scaling_factor;
    this.shift = settings.shift_factor ?? 0;
    this.mean = settings.latents_mean;
    this.std = settings.latents_std;
    this.gain = new Float64Array(channels);
    this.offset = new Float64Array(channels);
    for (let c = 0; c < channels; c++) {
      const m = this.mean?.[c] ?? 0;
      const s = this.std?.[c] ?? 1;
      this.gain[c] = this.scale / s;
      this.offset[c] = -(m / s + this.shift) * this.scale;
    }
  }

  /**
   * Builds the normalization of `channels`-channel latents; per-channel lists must have one
   * entry per channel.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * const n = LatentNormalization.of(16, { scaling_factor: 0.3611, shift_factor: 0.1159 });
   * assert.equal(n.channels, 16);
   * assert.throws(
   *   () => LatentNormalization.of(16, { scaling_factor: 1, latents_mean: [0], latents_std: [1] }),
   *   NormalizationError,
   * );
   * ```
   */
  static of(channels: number, settings: NormalizationSettings): LatentNormalization {
    for (const field of ["latents_mean", "latents_std"] as const) {
      const list = settings[field];
      if (list && list.length !== channels) {
        throw new NormalizationError(
          `model.${field}: expected ${channels} values (one per latent channel of the model), ` +
            `found ${list.length}`,
        );
      }
    }
    if (settings.latents_std?.some((s) => !(s > 0))) {
      throw new NormalizationError(`model.latents_std: expected positive values`);
    }
    return new LatentNormalization(channels, settings);
  }

  /** Whether stored latents equal z (scale 1, no shift, no mean/std). */
  get identity(): boolean {
    return this.gain.every((g) => g === 1) && this.offset.every((o) => o === 0);
  }

  /**
   * z → stored, in place or into `out`, for latents laid out N×C×(plane).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * const n = LatentNormalization.of(4, { scaling_factor: 0.5, shift_factor: 1 });
   * const stored = n.normalize(new Float32Array(4 * 64).fill(3), 64);
   * assert.equal(stored[0], (3 - 1) * 0.5); // (z − shift) × scale
   * ```
   */
  normalize(z: Float32Array, plane: number, out: Float32Array = new Float32Array(z.length)) {
    return this.#apply(z, plane, out, false);
  }

  /**
   * stored → z, for latents laid out N×C×(plane).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * const n = LatentNormalization.of(4, { scaling_factor: 0.5, shift_factor: 1 });
   * const z = n.denormalize(new Float32Array(4 * 64).fill(1), 64);
   * assert.equal(z[0], 1 / 0.5 + 1);
   * ```
   */
  denormalize(
    stored: Float32Array,
    plane: number,
    out: Float32Array = new Float32Array(stored.length),
  ) {
    return this.#apply(stored, plane, out, true);
  }

  #apply(x: Float32Array, plane: number, out: Float32Array, inverse: boolean): Float32Array {
    const per = this.channels * plane;
    if (x.length % per !== 0) {
      throw new NormalizationError(
        `expected latents of ${this.channels} channels × ${plane} values, found ${x.length} values`,
      );
    }
    for (let base = 0; base < x.length; base += per) {
      for (let c = 0; c < this.channels; c++) {
        const g = this.gain[c], o = this.offset[c];
        const start = base + c * plane;
        if (inverse) {
          for (let k = start; k < start + plane; k++) out[k] = (x[k] - o) / g;
        } else {
          for (let k = start; k < start + plane; k++) out[k] = x[k] * g + o;
        }
      }
    }
    return out;
  }

  /**
   * Puts the inverse map in front of a decoder graph, so the returned graph takes stored latents:
   * its input keeps its name and shape, and the decoder sees (stored − offset) / gain. Gradients
   * through it follow by the chain rule like any other node.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { GraphBuilder } from "../onnx/graph_builder.ts";
   * const b = new GraphBuilder();
   * const latent = b.input("latent_sample", 1, [1, 4, 8, 8]);
   * b.output(b.node("Tanh", [latent]), 1, [1, 4, 8, 8]);
   * const n = LatentNormalization.of(4, { scaling_factor: 0.18215 });
   * const decoder = n.decoderFromStored(b.graph);
   * assert.deepEqual(decoder.nodes.map((node) => node.opType), ["Mul", "Add", "Tanh"]);
   * assert.equal(decoder.inputs[0].name, "latent_sample");
   * ```
   */
  decoderFromStored(decoder: Graph): Graph {
    if (this.identity) return decoder;
    if (decoder.inputs.length !== 1) {
      throw new NormalizationError(
        `expected a decoder with one input, found ${decoder.inputs.length}`,
      );
    }
    const input = decoder.inputs[0];
    if (input.dtype !== DataType.FLOAT) {
      throw new NormalizationError(
        `expected a float32 decoder input, found element type ${input.dtype}`,
      );
    }
    const c = this.channels;
    const inverseGain = new Float32Array(c), bias = new Float32Array(c);
    for (let i = 0; i < c; i++) {
      inverseGain[i] = 1 / this.gain[i];
      bias[i] = -this.offset[i] / this.gain[i];
    }
    const existing = decoder.nodes.length;
    const b = new GraphBuilder({ graph: decoder });
    const z = input.name;
    const gain = b.initializer({ dtype: DataType.FLOAT, dims: [1, c, 1, 1], data: inverseGain });
    const offset = b.initializer({ dtype: DataType.FLOAT, dims: [1, c, 1, 1], data: bias });
    const denormalized = b.node("Add", [b.node("Mul", [z, gain]), offset]);
    const decoderNodes = decoder.nodes.slice(0, existing);
    for (const n of decoderNodes) n.inputs = n.inputs.map((x) => x === z ? denormalized : x);
    // The two new nodes go first, keeping the node list in topological order.
    decoder.nodes = [...decoder.nodes.slice(existing), ...decoderNodes];
    return decoder;
  }

  /** The normalization as recorded in manifests and file attributes. */
  describe(): Record<string, number | number[] | string> {
    return {
      latent_channels: this.channels,
      scaling_factor: this.scale,
      shift_factor: this.shift,
      ...(this.mean ? { latents_mean: [...this.mean] } : {}),
      ...(this.std ? { latents_std: [...this.std] } : {}),
      normalization: this.mean || this.std
        ? "stored = ((z - latents_mean) / latents_std - shift_factor) * scaling_factor"
        : "stored = (z - shift_factor) * scaling_factor",
    };
  }
}

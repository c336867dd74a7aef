/**
 * The report's samples: a few images spread over the dataset, each as the pixels the encoder
 * saw, the decoded encoder latent and the decoded optimized latent, side by side.
 *
 * @module
 */
import { decodeNpy } from "../format/npy.ts";
import { preprocessedTensor } from "../image/preprocessed_tensor.ts";
import { tensorToPng } from "../image/tensor_png.ts";
import { ModelSession } from "../model/model_session.ts";
import { psnr, ssim } from "../optim/metrics.ts";
import type { LatentNormalization } from "../model/normalization.ts";
import type { ReportSample } from "../report/html.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { Output } from "../store/records.ts";

/** Options of {@link decodedSamples}. */
export interface SampleOptions {
  /** How many (`package.samples`); fewer when there are fewer images. */
  count: number;
  /** The decoder's ONNX file. */
  decoder: string;
  /** Execution providers and threads of the decoder's session (default: the platform's). */
  providers?: readonly string[];
  threads?: number;
  /** Set when the model family overflows in float16 (see ModelSession.open). */
  float16Overflow?: string;
  /** The model's input range, which the decoder's output shares. */
  inputRange: readonly [number, number];
  /** How the stored latents relate to the decoder's z. */
  normalization: LatentNormalization;
  /** The output of `preprocess` (`tensor`), `encode` or `optimize` (`latent`) of an item. */
  output: (stage: SampleStage, id: string) => Promise<Output | undefined>;
}

/** Raised when a sample's image has no output of a stage it is made from. */
export class SampleSourceError extends Error {
  override readonly name = "SampleSourceError";
}

/** The stages a sample's images come from. */
export type SampleStage = "preprocess" | "encode" | "optimize";

/** A sample with the quality of its decoded encoder latent against the preprocessed image. */
export interface MeasuredSample extends ReportSample {
  /** PSNR in dB and SSIM, on the model's input range. */
  psnr: number;
  ssim: number;
}

/**
 * PNGs of `count` images picked evenly from `ids` (all of them when there are no more): the
 * original, the decoded encoder latent and the decoded optimum.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy } from "../format/npy.ts";
 * import { LatentNormalization } from "../model/normalization.ts";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * import { DataType } from "../onnx/tensor.ts";
 * import { ObjectStore } from "../store/objects.ts";
 *
 * const dir = await Deno.makeTempDir();
 * // A decoder that mixes 4 latent channels into RGB, one pixel per latent cell.
 * const b = new GraphBuilder();
 * const z = b.input("latent", DataType.FLOAT, ["N", 4, "h", "w"]);
 * const weights = b.constant(DataType.FLOAT, [3, 4, 1, 1], new Array(12).fill(0.1));
 * b.output(b.node("Conv", [z, weights]), DataType.FLOAT, ["N", 3, "h", "w"]);
 * await Deno.writeFile(`${dir}/decoder.onnx`, b.toBytes());
 * const store = new ObjectStore(`${dir}/cache`);
 * const npy = (shape: number[]) =>
 *   store.put(encodeNpy({ dtype: "<f4", shape, data: new Float32Array(shape.reduce((a, n) => a * n)) }));
 * const output = async (name: string, shape: number[]) => ({ objects: { [name]: await npy(shape) }, meta: null });
 * const outputs = {
 *   preprocess: await output("tensor", [1, 3, 8, 8]),
 *   encode: await output("latent", [1, 4, 8, 8]),
 *   optimize: await output("latent", [1, 4, 8, 8]),
 * };
 * const samples = await decodedSamples(store, ["00017"], {
 *   count: 8,
 *   decoder: `${dir}/decoder.onnx`,
 *   inputRange: [-1, 1],
 *   normalization: LatentNormalization.of(4, { scaling_factor: 0.18215 }),
 *   output: (stage) => Promise.resolve(outputs[stage]),
 * });
 * assert.equal(samples.length, 1);
 * const png = [0x89, 0x50, 0x4e, 0x47];
 * for (const image of [samples[0].original, samples[0].initial, samples[0].optimized]) {
 *   assert.deepEqual([...image.subarray(0, 4)], png);
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function decodedSamples(
  store: ObjectStore,
  ids: readonly string[],
  options: SampleOptions,
): Promise<MeasuredSample[]> {
  const count = Math.min(options.count, ids.length);
  if (count === 0) return [];
  const picked = Array.from({ length: count }, (_, i) => ids[Math.floor(i * ids.length / count)]);
  const { inputRange, normalization } = options;
  const decoder = await ModelSession.open(options.decoder, "decoder", {
    providers: options.providers,
    threads: options.threads,
    // The decoder's provider is said by the tasks that run it for results, not by the report.
    log: () => {},
  }, { float16Overflow: options.float16Overflow });
  const decode = async (digest: string) => {
    const latent = decodeNpy(await store.get(digest));
    // Latents are stored normalized; the decoder takes z.
    const z = normalization.denormalize(
      latent.data as Float32Array,
      latent.shape[2] * latent.shape[3],
    );
    return await decoder.run(z, latent.shape);
  };
  const png = (t: { data: Float32Array; dims: number[] }) =>
    tensorToPng(t.data, t.dims, inputRange);
  const dataRange = inputRange[1] - inputRange[0];
  const output = async (stage: SampleStage, id: string) => {
    const out = await options.output(stage, id);
    if (out === undefined) {
      throw new SampleSourceError(`sample ${id}: expected a ${stage} output, found none`);
    }
    return out;
  };
  const out: MeasuredSample[] = [];
  for (const id of picked) {
    // The preprocessed tensor holds exactly the pixels the encoder saw.
    const tensor = await preprocessedTensor(store, await output("preprocess", id), `image ${id}`);
    const original = { data: tensor.data, dims: tensor.shape };
    const initial = await decode((await output("encode", id)).objects.latent);
    out.push({
      id,
      original: await png(original),
      initial: await png(initial),
      optimized: await png(await decode((await output("optimize", id)).objects.latent)),
      psnr: psnr(initial.data, original.data, { dataRange }),
      // SSIM's 11×11 window needs an image at least that large.
      ssim: Math.min(original.dims[2], original.dims[3]) >= 11
        ? ssim(initial.data, original.data, original.dims, { dataRange })
        : NaN,
    });
  }
  await decoder.session.release();
  return out;
}

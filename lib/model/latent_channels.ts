/**
 * The latent channels a decoder takes, as its graph declares them: what encoding depends on in
 * the decoder (an encoder giving 2C channels gives mean ‖ log-variance, and C is the decoder's;
 * see geometry.ts), and nothing else of it — a fine-tuned decoder with the same interface
 * (SD's ft-MSE and ft-EMA share the original encoder) changes no latent the encoder gives.
 * Only the graph's declaration is read: no weights are loaded, no session is opened.
 *
 * @module
 */
import onnxProto from "onnx-proto";
import { ModelIoError } from "../onnx/errors.ts";
import type { Json } from "../store/canonical.ts";
import { type PresetName, PRESETS } from "./presets.ts";

const { onnx } = onnxProto;

/**
 * The channel count a decoder's first graph input declares (its dim 1), or null when that dim
 * is symbolic or absent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "../onnx/graph_builder.ts";
 * import { writeModel } from "../onnx/model_io.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const b = new GraphBuilder();
 * b.output(b.node("Tanh", [b.input("latent", 1, ["n", 4, "h", "w"])]), 1, ["n", 4, "h", "w"]);
 * await writeModel(`${dir}/vae_decoder.onnx`, b.graph);
 * assert.equal(await declaredLatentChannels(`${dir}/vae_decoder.onnx`), 4);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function declaredLatentChannels(path: string): Promise<number | null> {
  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(await Deno.readFile(path));
  } catch (e) {
    throw new ModelIoError(`${path}: not an ONNX model: ${(e as Error).message}`);
  }
  const initializers = new Set((model.graph?.initializer ?? []).map((t) => t.name));
  const input = (model.graph?.input ?? []).find((i) => !initializers.has(i.name));
  const dim = input?.type?.tensorType?.shape?.dim?.[1];
  const value = dim?.dimValue === undefined || dim.dimValue === null ? 0 : Number(dim.dimValue);
  return value > 0 && !dim?.dimParam ? value : null;
}

/**
 * What encode keys on in the decoder: the latent channels it declares, else those the config
 * fixes (`model.latent_channels`, or the preset's); a decoder that declares none, with a config
 * that fixes none, is keyed by its bytes (only running it would tell).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(decoderInterface({ preset: "sdxl" }).otherwise, { channels: 4 });
 * assert.equal(decoderInterface({}).otherwise, undefined);
 * ```
 */
export function decoderInterface(
  model: { preset?: PresetName; latent_channels?: number },
): { name: string; read: (path: string) => Promise<Json | null>; otherwise?: Json } {
  const fixed = model.latent_channels ??
    (model.preset ? PRESETS[model.preset].latentChannels : undefined);
  return {
    name: "latent-channels",
    async read(path) {
      const channels = await declaredLatentChannels(path);
      return channels === null ? null : { channels };
    },
    ...(fixed === undefined ? {} : { otherwise: { channels: fixed } }),
  };
}

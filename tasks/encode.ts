/**
 * encode: every preprocessed image through the VAE encoder, into the stored latent space. The
 * models' geometry decides the latent (C channels, or the mean of an encoder giving 2C), and
 * the config's normalization maps it: stored = ((z − mean) / std − shift) × scale.
 *
 * Reads: `preprocess` tensors (computed again from their recipes and checked against their
 * identities); the encoder and, when given, the decoder (fetched into the
 * store). Keyed: the encoder's bytes, and of the decoder only the latent channels it takes (C
 * decides the latent), so a decoder with other weights reruns nothing here. Without a decoder
 * (`optimize.method: "none"`), C is `model.latent_channels` or the preset's.
 * Produces per item: `latent` (`.npy`, 1×C×h×w, stored space).
 *
 * @module
 */
import { each, type Item, type Output } from "../lib/dag/task.ts";
import { encodeNpy } from "../lib/format/npy.ts";
import { type PreprocessedTensor, preprocessedTensor } from "../lib/image/preprocessed_tensor.ts";
import {
  checkBucketStep,
  checkImageSides,
  encodeImages,
  type OpenedVae,
  openVae,
} from "../lib/model/vae.ts";
import { decoderInterface } from "../lib/model/latent_channels.ts";
import type { ObjectStore } from "../lib/store/objects.ts";
import type { Config } from "../config/schema.ts";

/** Images per encoder call. */
const BATCH = 4;

interface State {
  open: () => Promise<OpenedVae>;
  release: () => Promise<void>;
}

export default each<Config, State>({
  name: "encode",
  deps: ["preprocess"],
  config: [
    // The latent's channels, when the config says them (checked against the decoder).
    "model.latent_channels",
    "model.scaling_factor",
    "model.shift_factor",
    "model.latents_mean",
    "model.latents_std",
  ],
  reads: [
    "model.encoder",
    "model.decoder",
    "model.preset",
    "model.input_range",
    "model.providers",
    "model.threads",
    "preprocess.size",
    "preprocess.crop",
    "preprocess.buckets.step",
  ],
  version: "2",
  source: import.meta.url,
  describe: "encode every image with the VAE encoder",
  // The decoder, when given, decides the latent's channels (C, or the mean of an encoder giving
  // 2C): that is keyed, not its weights (a fine-tuned decoder re-encodes nothing). Both models
  // are checked at run.
  files: ({ model }) => ({
    encoder: "model.encoder",
    decoder: model.decoder ? { field: "model.decoder", keyOn: decoderInterface(model) } : undefined,
  }),
  prepare(ctx) {
    const { model } = ctx.config;
    const { encoder, decoder } = ctx.files;
    let vae: Promise<OpenedVae> | undefined;
    // Opened with the first batch: a run with every latent cached loads no model.
    const open = () =>
      vae ??= openVae({
        // Messages name the model files the user configured, not their copies in the store.
        encoder: { path: encoder.path, label: `model.encoder (${where(model.encoder)})` },
        decoder: decoder &&
          { path: decoder.path, label: `model.decoder (${where(model.decoder!)})` },
        model,
        size: ctx.config.preprocess.size,
        runtime: { providers: model.providers, threads: model.threads, log: ctx.log },
      });
    const release = async () => {
      const opened = await vae?.catch(() => undefined);
      await opened?.encoder.release();
    };
    return Promise.resolve({ state: { open, release } });
  },
  // A batch holds images of one size.
  group: (item) => (item.inputs.preprocess.meta as { shape: number[] }).shape,
  async teardown(state) {
    await state.release();
  },
  async runBatched(ctx, source, state) {
    const vae = await state.open();
    const { crop, buckets } = ctx.config.preprocess;
    if (crop === "buckets") checkBucketStep(vae, buckets.step);
    const [, , height, width] = source.group as number[];
    checkImageSides(vae, height, width);
    while (true) {
      const items = await source.next(BATCH);
      if (items.length === 0) return;
      let results: (Output | Error)[];
      try {
        results = await encodeBatch(ctx.store, items, vae);
      } catch (e) {
        results = items.map(() => e as Error);
      }
      for (let i = 0; i < items.length; i++) await source.done(items[i], results[i]);
    }
  },
});

function where(source: { path?: string; url?: string }): string {
  return source.path ?? source.url ?? "?";
}

async function encodeBatch(
  store: ObjectStore,
  items: Item[],
  vae: OpenedVae,
): Promise<(Output | Error)[]> {
  // Each image's pixels are computed again from its source; one that cannot be fails alone.
  const loaded = await Promise.all(
    items.map((item) =>
      preprocessedTensor(store, item.inputs.preprocess, `image ${item.id}`).catch((e: Error) => e)
    ),
  );
  const ready = loaded.flatMap((t, i) => t instanceof Error ? [] : [i]);
  const results: (Output | Error)[] = loaded.map((t) => t instanceof Error ? t : new Error());
  if (ready.length === 0) return results;
  const tensors = ready.map((i) => loaded[i] as PreprocessedTensor);
  const [, c, h, w] = tensors[0].shape;
  const size = c * h * w;
  const images = new Float32Array(ready.length * size);
  tensors.forEach((t, k) => {
    if (t.shape.join() !== tensors[0].shape.join()) {
      throw new Error(`images of one batch differ in shape: ${t.shape} vs ${tensors[0].shape}`);
    }
    images.set(t.data, k * size);
  });
  const { latents, dims } = await encodeImages(vae, images, [ready.length, c, h, w]);
  const per = dims[1] * dims[2] * dims[3];
  await Promise.all(ready.map(async (i, k) => {
    const latent = latents.slice(k * per, (k + 1) * per);
    const bad = latent.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      results[i] = new Error(`the encoder gave ${latent[bad]} for image ${items[i].id}`);
      return;
    }
    const digest = await store.put(
      encodeNpy({ dtype: "<f4", shape: [1, dims[1], dims[2], dims[3]], data: latent }),
    );
    results[i] = {
      objects: { latent: digest },
      meta: { shape: [1, dims[1], dims[2], dims[3]], provider: vae.encoder.provider },
    };
  }));
  return results;
}

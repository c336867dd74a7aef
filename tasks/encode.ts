/**
 * encode: every preprocessed image through the VAE encoder. An encoder with 8 output channels
 * (mean and log-variance) gives its first 4; the latent is multiplied by the scaling factor.
 *
 * Reads: `preprocess` tensors; the encoder model (fetched into the store, so a new model reruns
 * this task and nothing upstream). Produces per item: `latent` (`.npy`, 1×4×h×w).
 *
 * @module
 */
import { each, type Item, type Output } from "../lib/dag/task.ts";
import { decodeNpy, encodeNpy } from "../lib/format/npy.ts";
import { checkEncoder, encodeImages, ModelSession } from "../lib/model/vae.ts";
import { fetchSource } from "../lib/net/fetch_source.ts";
import type { Config } from "../config/schema.ts";

/** Images per encoder call. */
const BATCH = 4;

export default each<Config, { open: () => Promise<ModelSession> }>({
  name: "encode",
  deps: ["preprocess"],
  config: ["model.scaling_factor"],
  reads: ["model.encoder", "model.providers", "model.threads"],
  version: "1",
  source: import.meta.url,
  describe: "encode every image with the VAE encoder",
  async prepare(ctx) {
    const { model } = ctx.config;
    const encoder = await fetchSource(ctx.store, model.encoder, "model.encoder", {
      signal: ctx.signal,
    });
    // Messages name the model file the user configured, not its copy in the store.
    const label = `model.encoder (${model.encoder.path ?? model.encoder.url})`;
    await checkEncoder(encoder.path, label);
    let session: Promise<ModelSession> | undefined;
    const open = () =>
      session ??= ModelSession.open(encoder.path, label, {
        providers: model.providers,
        threads: model.threads,
        log: ctx.log,
      });
    return { inputs: { encoder: encoder.digest }, state: { open } };
  },
  // A batch holds images of one size.
  group: (item) => (item.inputs.preprocess.meta as { shape: number[] }).shape,
  async runBatched(ctx, source, state) {
    const encoder = await state.open();
    while (true) {
      const items = await source.next(BATCH);
      if (items.length === 0) return;
      let results: (Output | Error)[];
      try {
        results = await encodeBatch(ctx.store, items, encoder, ctx.config.model.scaling_factor);
      } catch (e) {
        results = items.map(() => e as Error);
      }
      for (let i = 0; i < items.length; i++) await source.done(items[i], results[i]);
    }
  },
});

async function encodeBatch(
  store: Parameters<typeof fetchSource>[0],
  items: Item[],
  encoder: ModelSession,
  scalingFactor: number,
): Promise<(Output | Error)[]> {
  const tensors = await Promise.all(
    items.map(async (item) =>
      decodeNpy(await store.get(item.inputs.preprocess.objects.tensor), `tensor of ${item.id}`)
    ),
  );
  const [, c, h, w] = tensors[0].shape;
  const size = c * h * w;
  const images = new Float32Array(items.length * size);
  tensors.forEach((t, i) => {
    if (t.shape.join() !== tensors[0].shape.join()) {
      throw new Error(`images of one batch differ in shape: ${t.shape} vs ${tensors[0].shape}`);
    }
    images.set(t.data as Float32Array, i * size);
  });
  const { latents, dims } = await encodeImages(
    encoder,
    images,
    [items.length, c, h, w],
    scalingFactor,
  );
  const per = dims[1] * dims[2] * dims[3];
  return await Promise.all(items.map(async (item, i) => {
    const latent = latents.slice(i * per, (i + 1) * per);
    const bad = latent.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) return new Error(`the encoder gave ${latent[bad]} for image ${item.id}`);
    const digest = await store.put(
      encodeNpy({ dtype: "<f4", shape: [1, dims[1], dims[2], dims[3]], data: latent }),
    );
    return {
      objects: { latent: digest },
      meta: { shape: [1, dims[1], dims[2], dims[3]], provider: encoder.provider },
    };
  }));
}

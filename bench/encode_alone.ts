/**
 * The encoder alone, for `deno task bench encode`: the images preprocessed first (as the
 * preprocess task does, not timed), then the encode task's session and batches over the
 * tensors held in memory, timed from the first batch to the last latent. What the pipeline
 * would reach if decoding and preprocessing cost nothing.
 *
 * usage: deno run -A bench/encode_alone.ts ENCODER DECODER IMAGES_DIR COUNT SIZE THREADS BATCH OUT.npy
 * prints one JSON line: {"seconds", "cpuSeconds", "images"}; OUT.npy holds the latents of the
 * first images (compared with PyTorch's).
 *
 * @module
 */
import { cpuUsage } from "node:process";
import { join } from "node:path";
import { encodeNpy } from "../lib/format/npy.ts";
import { preprocessImage } from "../lib/image/preprocess.ts";
import { encodeImages, openVae } from "../lib/model/vae.ts";
import { jpegName } from "./encode_inputs.ts";

/** Latents kept for the comparison with the reference. */
export const COMPARED_IMAGES = 8;

async function main(): Promise<void> {
  const [encoder, decoder, images, countArg, sizeArg, threadsArg, batchArg, out] = Deno.args;
  const count = Number(countArg), size = Number(sizeArg), threads = Number(threadsArg);
  const batchSize = Number(batchArg);
  const tensors: Float32Array[] = [];
  for (let i = 0; i < count; i++) {
    const { tensor } = await preprocessImage(join(images, jpegName(i)), { size, preview: false });
    tensors.push(tensor);
  }
  const vae = await openVae({
    encoder: { path: encoder, label: "encoder" },
    decoder: { path: decoder, label: "decoder" },
    model: { scaling_factor: 1, input_range: [-1, 1] },
    size,
    runtime: { providers: ["cpu"], threads, log: () => {} },
  });
  const per = 3 * size * size;
  const kept: Float32Array[] = [];
  const started = performance.now();
  const cpu = cpuUsage();
  for (let first = 0; first < count; first += batchSize) {
    const n = Math.min(batchSize, count - first);
    const batch = new Float32Array(n * per);
    for (let k = 0; k < n; k++) batch.set(tensors[first + k], k * per);
    const { latents } = await encodeImages(vae, batch, [n, 3, size, size]);
    if (first < COMPARED_IMAGES) kept.push(latents);
  }
  const used = cpuUsage(cpu);
  const seconds = (performance.now() - started) / 1000;
  await vae.encoder.release();
  const latentSize = (size / 8) ** 2 * 4;
  const compared = Math.min(COMPARED_IMAGES, count);
  const data = new Float32Array(compared * latentSize);
  let at = 0;
  for (const l of kept) {
    const take = Math.min(l.length, data.length - at);
    data.set(l.subarray(0, take), at);
    at += take;
  }
  await Deno.writeFile(
    out,
    encodeNpy({ dtype: "<f4", shape: [compared, 4, size / 8, size / 8], data }),
  );
  console.log(JSON.stringify({
    seconds,
    cpuSeconds: (used.user + used.system) / 1e6,
    images: count,
  }));
}

if (import.meta.main) await main();

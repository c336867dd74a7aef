/**
 * The inputs of `deno task bench encode`: a folder of generated JPEGs of ImageNet's typical size
 * (500×375, quality 90, textured so that they weigh what photographs do, about 90 KB), and an
 * SD-v1-layout VAE with random weights, written both as ONNX models for latentforge and as the
 * same weights by their PyTorch names for the reference script.
 *
 * @module
 */
import sharp from "sharp";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { encodeNpz, type NpzArray } from "../lib/format/npz.ts";
import { readGraph, writeModel } from "../lib/onnx/model_io.ts";
import { DataType } from "../lib/onnx/tensor.ts";
import { writeFileAtomic } from "../lib/store/objects.ts";
import { removeTree } from "./absent.ts";
import { syntheticImageSvg } from "../tests/fixtures/synthetic_images.ts";
import { writeSdDecoder, writeSdEncoder } from "../tests/fixtures/vae.ts";

/** ImageNet's most common size. */
export const JPEG_SIZE = { width: 500, height: 375 };
/** Bumped when the generated images change, so that a cached set of another kind is redone. */
const GENERATOR_VERSION = "1";
/** Textures are slow to render, so a few are made once, larger than an image, and cut. */
const TEXTURES = 6;
const TEXTURE_SIZE = { width: 700, height: 525 };

/**
 * The encoder's channels per down block, from the image side: those of the shared small VAE
 * (`vae-small-bsds`), so that one 256² image takes about 50 ms on two cores (SD v1's 128/256/
 * 512/512 take 1.15 s, which would make 2,000 images take 40 minutes per side and round).
 */
export const ENCODER_CHANNELS = [32, 64, 64, 64];
/** SD v1's layout: two resnet blocks per down block, two in the mid block around attention. */
export const LAYERS_PER_BLOCK = 2;
const GROUPS = 32;
const LATENT_CHANNELS = 4;

/** Name of image `i` in the folder. */
export function jpegName(i: number): string {
  return `${String(i).padStart(5, "0")}.jpg`;
}

/**
 * Makes sure `dir` holds images 0 … count−1 (generated once, in parallel, not timed); returns
 * their mean size in bytes.
 */
export async function ensureJpegs(dir: string, count: number): Promise<number> {
  const marker = join(dir, "complete.json");
  let done: { version?: string; count?: number; bytes?: number } = {};
  try {
    done = JSON.parse(await Deno.readTextFile(marker));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (done.version === GENERATOR_VERSION && (done.count ?? 0) >= count) {
    return meanSize(dir, count);
  }
  // Images of another generator are not mixed with these.
  if (done.version !== GENERATOR_VERSION) await removeTree(dir);
  await Deno.mkdir(dir, { recursive: true });
  console.log(`generating ${count} JPEGs of 500×375 in ${dir} (once, not timed) …`);
  const started = performance.now();
  const textures = await renderTextures();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const path = join(dir, jpegName(i));
      await writeFileAtomic(path, await jpeg(i, textures));
    }
  };
  await Promise.all(Array.from({ length: navigator.hardwareConcurrency }, worker));
  await writeFileAtomic(
    marker,
    new TextEncoder().encode(JSON.stringify({ version: GENERATOR_VERSION, count })),
  );
  console.log(`generated in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return meanSize(dir, count);
}

async function meanSize(dir: string, count: number): Promise<number> {
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += (await Deno.stat(join(dir, jpegName(i)))).size;
  return bytes / count;
}

/** Coloured fractal noise, contrast raised: the fine detail that makes photographs weigh. */
async function renderTextures(): Promise<Uint8Array[]> {
  const { width, height } = TEXTURE_SIZE;
  const stretch = ["R", "G", "B"].map((c) =>
    `<feFunc${c} type="linear" slope="2.6" intercept="-0.8"/>`
  ).join("");
  const out: Uint8Array[] = [];
  for (let k = 0; k < TEXTURES; k++) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
      `<filter id="n"><feTurbulence type="fractalNoise" baseFrequency="0.${1 + k % 3} 0.${
        2 + k % 2
      }" numOctaves="3" seed="${k + 1}"/><feComponentTransfer>${stretch}</feComponentTransfer>` +
      `</filter><rect width="${width}" height="${height}" filter="url(#n)"/></svg>`;
    const raw = await sharp(new TextEncoder().encode(svg)).removeAlpha().raw().toBuffer();
    out.push(new Uint8Array(raw.buffer, raw.byteOffset, raw.length));
  }
  return out;
}

/** Image `i`: a cut of one texture under a scene of shapes, a face and strokes. */
async function jpeg(i: number, textures: Uint8Array[]): Promise<Uint8Array> {
  const { width, height } = JPEG_SIZE;
  const left = (i * 37) % (TEXTURE_SIZE.width - width);
  const top = (i * 53) % (TEXTURE_SIZE.height - height);
  const background = await sharp(textures[i % TEXTURES], { raw: { ...TEXTURE_SIZE, channels: 3 } })
    .extract({ left, top, width, height })
    .raw()
    .toBuffer();
  const scene = syntheticImageSvg(i, JPEG_SIZE).replace("<svg ", '<svg opacity="0.6" ');
  const bytes = await sharp(background, { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(scene) }])
    .jpeg({ quality: 90 })
    .toBuffer();
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** The files of the benchmark's VAE. */
export interface BenchVae {
  encoder: string;
  decoder: string;
  /** The encoder's weights by PyTorch name (`weights.npz`) and its shape (`index.json`). */
  weightsDir: string;
}

/**
 * Writes the SD-v1-layout encoder ({@link ENCODER_CHANNELS}) and a small decoder of the same
 * latent (encode opens it to check the geometry) into `dir`, as single ONNX files (the store
 * copies a model file alone, so weights are kept inside it), and the encoder's weights for
 * bench/encode_torch.py.
 */
export async function writeBenchVae(dir: string): Promise<BenchVae> {
  // The writers take channels from the latent side.
  const channels = [...ENCODER_CHANNELS].reverse();
  const external = await writeSdEncoder(join(dir, "external"), {
    channels,
    layersPerBlock: LAYERS_PER_BLOCK,
  });
  const graph = await readGraph(external);
  const encoder = join(dir, "vae_encoder.onnx");
  await writeModel(encoder, graph);
  const decoded = await writeSdDecoder(join(dir, "external"), { channels, layersPerBlock: 1 });
  const decoder = join(dir, "vae_decoder.onnx");
  await writeModel(decoder, await readGraph(decoded.model));
  await Deno.remove(join(dir, "external"), { recursive: true });

  // The graph's weights are named as PyTorch names its parameters (small integer constants
  // and norm scales of the graph's own making are not weights).
  const weights: Record<string, NpzArray> = {};
  for (const [name, t] of graph.initializers) {
    if (t.dtype !== DataType.FLOAT || !/\.(weight|bias)$/.test(name)) continue;
    weights[name] = { dtype: "<f4", shape: t.dims, data: t.data as Float32Array };
  }
  const weightsDir = join(dir, "weights");
  await Deno.mkdir(weightsDir, { recursive: true });
  await writeFileAtomic(join(weightsDir, "weights.npz"), encodeNpz(weights));
  const index = {
    channels: ENCODER_CHANNELS,
    layersPerBlock: LAYERS_PER_BLOCK,
    midResnets: 2,
    groups: GROUPS,
    latentChannels: LATENT_CHANNELS,
  };
  await writeFileAtomic(
    join(weightsDir, "index.json"),
    new TextEncoder().encode(JSON.stringify(index)),
  );
  return { encoder, decoder, weightsDir };
}

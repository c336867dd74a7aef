/**
 * Any VAE, end to end: generated VAEs with 4, 16 and 32 latent channels, one with 16×
 * downsampling, one taking images in [0, 1], one with shift and per-channel normalization, each
 * through the whole pipeline to `package`. Checked per VAE: the latents' shapes in npz, HDF5 and
 * safetensors as numpy/h5py read them, the normalization recorded in every format and the
 * manifest, the report's samples equal to the decoder's images of the stored latents
 * denormalized independently here, the optimizer lowering every image's loss, and the
 * gradient Adam uses (stored space, through the denormalization) against finite differences.
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { python } from "./fixtures/pipeline_project.ts";
import { pythonRequirement } from "./fixtures/python.ts";
import { partIf } from "./fixtures/skip.ts";
import { type VaeSpec, writeVae } from "./fixtures/vae.ts";
import { VaeProject } from "./fixtures/vae_project.ts";
import { decodeNpz } from "../lib/format/npz.ts";
import type { NpyArray } from "../lib/format/npy.ts";
import { decodeSafetensors } from "../lib/format/safetensors.ts";
import { preprocessImage } from "../lib/image/preprocess.ts";
import { gradientEvaluator } from "../lib/model/evaluators.ts";
import { LatentNormalization } from "../lib/model/normalization.ts";
import { seededRandom } from "../lib/base/random.ts";

const numpyH5py = pythonRequirement("numpy, h5py");

const SIDE = 32;
const IMAGES = 3;

interface Case {
  name: string;
  spec: VaeSpec;
  /** The `model` fields besides the files. */
  model: Record<string, unknown>;
  /** What the run must find and record. */
  channels: number;
  factor: number;
  scale: number;
  shift: number;
  mean?: number[];
  std?: number[];
  range: [number, number];
}

const CASES: Case[] = [
  {
    name: "4 channels, sd15 preset, encoder giving mean and log-variance",
    spec: { family: "sd", latentChannels: 4, factor: 8, encoderOutput: "moments", seed: 21 },
    model: { preset: "sd15" },
    channels: 4,
    factor: 8,
    scale: 0.18215,
    shift: 0,
    range: [-1, 1],
  },
  {
    name: "16 channels, flux1 preset (shift and scale)",
    spec: { family: "sd", latentChannels: 16, factor: 8, encoderOutput: "moments", seed: 22 },
    model: { preset: "flux1" },
    channels: 16,
    factor: 8,
    scale: 0.3611,
    shift: 0.1159,
    range: [-1, 1],
  },
  {
    name: "32 channels, flux2 preset, encoder giving the latent itself",
    spec: { family: "sd", latentChannels: 32, factor: 8, encoderOutput: "mean", seed: 23 },
    model: { preset: "flux2" },
    channels: 32,
    factor: 8,
    scale: 1,
    shift: 0,
    range: [-1, 1],
  },
  {
    name: "16× downsampling, explicit scaling factor",
    spec: { family: "sd", latentChannels: 8, factor: 16, encoderOutput: "moments", seed: 24 },
    model: { scaling_factor: 0.5 },
    channels: 8,
    factor: 16,
    scale: 0.5,
    shift: 0,
    range: [-1, 1],
  },
  {
    name: "images in [0, 1], taesd preset",
    spec: { family: "taesd", latentChannels: 4, factor: 8, seed: 25 },
    model: { preset: "taesd" },
    channels: 4,
    factor: 8,
    scale: 1,
    shift: 0,
    range: [0, 1],
  },
  {
    name: "shift and per-channel mean/std",
    spec: { family: "sd", latentChannels: 4, factor: 8, encoderOutput: "moments", seed: 26 },
    model: {
      scaling_factor: 0.8,
      shift_factor: 0.25,
      latents_mean: [0.3, -0.2, 0.1, -0.4],
      latents_std: [0.5, 2, 1.5, 0.25],
    },
    channels: 4,
    factor: 8,
    scale: 0.8,
    shift: 0.25,
    mean: [0.3, -0.2, 0.1, -0.4],
    std: [0.5, 2, 1.5, 0.25],
    range: [-1, 1],
  },
];

/** z from a stored latent, by the documented formula (independent of the library's code). */
function denormalize(stored: Float32Array, c: Case, plane: number): Float32Array {
  return Float32Array.from(stored, (s, i) => {
    const ch = Math.floor(i / plane) % c.channels;
    return (s / c.scale + c.shift) * (c.std?.[ch] ?? 1) + (c.mean?.[ch] ?? 0);
  });
}

/** 8-bit RGB (interleaved) of a decoder output, as a PNG of the input range holds it. */
function toPixels(image: Float32Array, range: [number, number]): Uint8ClampedArray {
  const pixels = image.length / 3;
  const out = new Uint8ClampedArray(image.length);
  for (let ch = 0; ch < 3; ch++) {
    for (let i = 0; i < pixels; i++) {
      out[i * 3 + ch] = (image[ch * pixels + i] - range[0]) * 255 / (range[1] - range[0]);
    }
  }
  return out;
}

async function pngPixels(b64: string): Promise<Uint8Array> {
  const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  const raw = await sharp(bytes).removeAlpha().raw().toBuffer();
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.length);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The report's sample PNGs (base64) of one image: original, initial, optimized. */
function reportSamples(html: string, id: string): string[] {
  const start = html.indexOf(`<span class="mono">${id}</span>`);
  assert(start >= 0, `the report has a sample of ${id}`);
  const end = html.indexOf("</article>", start);
  return [...html.slice(start, end).matchAll(/data:image\/png;base64,([A-Za-z0-9+/=]+)/g)]
    .map((m) => m[1]);
}

/** What a case's run left: where its dataset is, its models, its latents. */
interface Built {
  p: VaeProject;
  vae: { encoder: string; decoder: string };
  latentShape: number[];
  npz: Record<string, unknown>;
}

/** npz, safetensors and manifest say the case's shapes and normalization; losses fell. */
function checkDataset(
  c: Case,
  { latentShape, npz }: Built,
  st: ReturnType<typeof decodeSafetensors>,
  manifest: { models: Record<string, unknown> },
): void {
  const latents = npz.latents as NpyArray;
  const initial = npz.initial_latents as NpyArray;
  assertEquals(latents.shape, [IMAGES, ...latentShape]);
  assertEquals(initial.shape, [IMAGES, ...latentShape]);
  assertEquals(Number((npz.scaling_factor as NpyArray).data[0]), c.scale);
  assertEquals(Number((npz.shift_factor as NpyArray).data[0]), c.shift);
  assertEquals(Number((npz.latent_channels as NpyArray).data[0]), c.channels);
  if (c.mean) {
    assertEquals([...(npz.latents_mean as NpyArray).data], c.mean.map(Math.fround));
    assertEquals([...(npz.latents_std as NpyArray).data], c.std!.map(Math.fround));
  }
  const lossInitial = (npz.loss_initial as NpyArray).data as Float32Array;
  const lossFinal = (npz.loss_final as NpyArray).data as Float32Array;
  for (let i = 0; i < IMAGES; i++) {
    assert(
      lossFinal[i] < lossInitial[i],
      `image ${i}: loss ${lossInitial[i]} → ${lossFinal[i]} did not fall`,
    );
  }
  assertEquals(st.tensors.latents.shape, [IMAGES, ...latentShape]);
  assertEquals(Number(st.metadata.scaling_factor), c.scale);
  assertEquals(Number(st.metadata.shift_factor), c.shift);
  if (c.mean) assertEquals(JSON.parse(st.metadata.latents_mean), c.mean);
  assertEquals(manifest.models.scaling_factor, c.scale);
  assertEquals(manifest.models.shift_factor, c.shift);
  assertEquals(manifest.models.latent_channels, c.channels);
  assertEquals(manifest.models.latents_std, c.std);
}

/** numpy, h5py and a plain JSON header read the files alike. */
async function checkPythonReads(c: Case, dir: string, latentShape: number[]): Promise<void> {
  const found = await python<Record<string, unknown>>(`
import h5py, json, struct, numpy as np
d = np.load(${JSON.stringify(join(dir, "latents.npz"))})
f = h5py.File(${JSON.stringify(join(dir, "latents.h5"))}, "r")
raw = open(${JSON.stringify(join(dir, "latents.safetensors"))}, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
print(json.dumps({
  "npz": list(d["latents"].shape), "npz_initial": list(d["initial_latents"].shape),
  "h5": list(f["latents"].shape), "h5_scale": float(f.attrs["scaling_factor"]),
  "h5_shift": float(f.attrs["shift_factor"]),
  "h5_mean": json.loads(f.attrs["latents_mean"]) if "latents_mean" in f.attrs else None,
  "same": bool(np.array_equal(f["latents"][()], d["latents"])),
  "st": header["latents"]["shape"], "st_dtype": header["latents"]["dtype"],
}))`);
  const shape = [IMAGES, ...latentShape];
  assertEquals(found.npz, shape);
  assertEquals(found.npz_initial, shape);
  assertEquals(found.h5, shape);
  assertEquals(found.st, shape);
  assertEquals(found.st_dtype, "F32");
  assertEquals(found.same, true);
  assertEquals(found.h5_scale, c.scale);
  assertEquals(found.h5_shift, c.shift);
  assertEquals(found.h5_mean, c.mean ?? null);
}

/** The report's samples are the decoder's images of the stored latents, denormalized. */
async function checkReportSamples(c: Case, { p, vae, latentShape, npz }: Built): Promise<void> {
  const html = await Deno.readTextFile(join(p.out, "report.html"));
  const ids = (npz.ids as { data: string[] }).data;
  const initial = (npz.initial_latents as NpyArray).data as Float32Array;
  const latents = (npz.latents as NpyArray).data as Float32Array;
  const lossInitial = (npz.loss_initial as NpyArray).data as Float32Array;
  const decoder = await ort.InferenceSession.create(vae.decoder);
  const plane = latentShape[1] * latentShape[2];
  const per = c.channels * plane;
  const decode = async (z: Float32Array) => {
    const out = await decoder.run({
      [decoder.inputNames[0]]: new ort.Tensor("float32", z, [1, ...latentShape]),
    });
    return out[decoder.outputNames[0]].data as Float32Array;
  };
  try {
    for (const [i, id] of ids.slice(0, 2).entries()) {
      // optimize started from D(z) of the stored latent, z undone here: the loss it recorded.
      const target = (await preprocessImage(join(p.images, `${id}.png`), {
        size: SIDE,
        inputRange: c.range,
        preview: false,
      })).tensor;
      const y = await decode(denormalize(initial.slice(i * per, (i + 1) * per), c, plane));
      const mse = y.reduce((sum, v, k) => sum + (v - target[k]) ** 2, 0) / y.length;
      assert(
        Math.abs(mse - lossInitial[i]) <= 1e-4 * mse,
        `${id}: recorded initial loss ${lossInitial[i]}, D(z) of its latent gives ${mse}`,
      );
      const [, initialPng, optimizedPng] = reportSamples(html, id);
      for (
        const [png, stored] of [
          [initialPng, initial.slice(i * per, (i + 1) * per)],
          [optimizedPng, latents.slice(i * per, (i + 1) * per)],
        ] as const
      ) {
        const expected = toPixels(await decode(denormalize(stored, c, plane)), c.range);
        const shown = await pngPixels(png);
        assert(maxDiff(shown, expected) <= 1, `${id}: the sample is not D(z) of its latent`);
        if (c.scale !== 1 || c.shift !== 0 || c.mean) {
          // The check can fail: decoding the stored latent as if it were z looks different.
          const unnormalized = toPixels(await decode(stored), c.range);
          assert(maxDiff(shown, unnormalized) > 2, `${id}: normalization invisible`);
        }
      }
    }
  } finally {
    await decoder.release();
  }
}

/** The gradient Adam follows, in the stored space, against finite differences. */
async function checkStoredGradient(c: Case, { vae, latentShape, npz }: Built): Promise<void> {
  const normalization = LatentNormalization.of(c.channels, {
    scaling_factor: c.scale,
    shift_factor: c.shift,
    latents_mean: c.mean,
    latents_std: c.std,
  });
  const evaluator = await gradientEvaluator(vae.decoder, "decoder", {
    batch: 1,
    latentShape: latentShape as [number, number, number],
    normalization,
    loss: "l2",
    charbonnierEps: 1e-3,
  }, { providers: ["cpu"], threads: 1, log: () => {} });
  const rand = seededRandom(7);
  const per = c.channels * latentShape[1] * latentShape[2];
  const s0 = ((npz.initial_latents as NpyArray).data as Float32Array).slice(0, per);
  const target = Float32Array.from({ length: 3 * SIDE * SIDE }, () => rand() * 2 - 1);
  const v = Float32Array.from({ length: per }, () => rand() * 2 - 1);
  const at = async (k: number, eps: number) =>
    (await evaluator.evaluate(Float32Array.from(s0, (x, j) => x + k * eps * v[j]), target, s0))
      .losses[0];
  const { directions } = await evaluator.evaluate(s0, target, s0);
  const analytic = directions.reduce((sum, g, j) => sum + g * v[j], 0);
  const eps = 1e-2 * Math.max(1e-3, ...Array.from(s0, Math.abs));
  const numeric = (8 * (await at(1, eps)) - 8 * (await at(-1, eps)) - (await at(2, eps)) +
    (await at(-2, eps))) / (12 * eps);
  const rel = Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric));
  assert(rel < 2e-2, `gradient ${analytic} vs finite difference ${numeric} (rel ${rel})`);
}

for (const c of CASES) {
  const name = `any VAE end to end: ${c.name}`;
  Deno.test(name, async () => {
    const p = await VaeProject.create(IMAGES, SIDE + 8);
    try {
      const vae = await writeVae(join(p.dir, "vae"), c.spec);
      const run = await p.run({
        preprocess: { size: SIDE },
        model: {
          encoder: { path: vae.encoder },
          decoder: { path: vae.decoder },
          providers: ["cpu"],
          threads: 1,
          ...c.model,
        },
        optimize: { lr: 0.02, max_steps: 3, patience: 3, tolerance: 0, batch_size: 2 },
        package: { samples: 2 },
      });
      assertEquals(run.exitCode, 0, JSON.stringify([...run.ends.values()]));
      assertEquals(run.failed.size, 0, JSON.stringify([...run.failed]));
      for (const task of ["encode", "optimize"]) {
        assertEquals(run.ends.get(task)?.counts.ran, IMAGES, `${task} ran every image`);
      }
      const h = SIDE / c.factor;
      // npz, read here; numpy, h5py and a plain JSON header read below.
      const dir = join(p.out, "train");
      const built: Built = {
        p,
        vae,
        latentShape: [c.channels, h, h],
        npz: decodeNpz(await Deno.readFile(join(dir, "latents.npz"))),
      };
      checkDataset(
        c,
        built,
        decodeSafetensors(await Deno.readFile(join(dir, "latents.safetensors"))),
        JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json"))),
      );
      if (partIf(numpyH5py, name, "the numpy, h5py and safetensors-header checks")) {
        await checkPythonReads(c, dir, built.latentShape);
      }
      await checkReportSamples(c, built);
      await checkStoredGradient(c, built);
    } finally {
      await p.cleanup();
    }
  });
}

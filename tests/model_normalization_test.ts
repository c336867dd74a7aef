/**
 * Latent normalization: the documented formula in both directions, one value per channel for
 * per-channel statistics, and the decoder graph that takes stored latents — equal to the decoder
 * on z, with a gradient that passes finite differences. A model with more channels than the
 * configured statistics is one error at encode.
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { tinySdDecoder, writeVae } from "./fixtures/vae.ts";
import { VaeProject } from "./fixtures/vae_project.ts";
import { LatentNormalization, NormalizationError } from "../lib/model/normalization.ts";
import { gradientFreeEvaluator } from "../lib/model/evaluators.ts";
import { ModelSession, openVae } from "../lib/model/vae.ts";
import { checkGradient } from "../lib/onnx/gradient_check.ts";
import { seededRandom } from "../lib/base/random.ts";
import { encodeModel } from "../lib/onnx/model_io.ts";

Deno.test("normalization: stored = ((z − mean) / std − shift) × scale per channel, and back", () => {
  const n = LatentNormalization.of(2, {
    scaling_factor: 0.5,
    shift_factor: 0.1,
    latents_mean: [1, -2],
    latents_std: [2, 4],
  });
  // Two channels of two values each, one image.
  const z = Float32Array.of(3, 5, -2, 6);
  const stored = n.normalize(z, 2);
  const expected = [
    ((3 - 1) / 2 - 0.1) * 0.5,
    ((5 - 1) / 2 - 0.1) * 0.5,
    (0 / 4 - 0.1) * 0.5,
    (
      8 / 4 - 0.1
    ) * 0.5,
  ];
  for (let i = 0; i < 4; i++) assert(Math.abs(stored[i] - expected[i]) < 1e-6, `value ${i}`);
  const back = n.denormalize(stored, 2);
  for (let i = 0; i < 4; i++) assert(Math.abs(back[i] - z[i]) < 1e-5, `round trip ${i}`);
  // Without statistics it is diffusers' (z − shift) × scale.
  const flux = LatentNormalization.of(16, { scaling_factor: 0.3611, shift_factor: 0.1159 });
  assert(
    Math.abs(flux.normalize(Float32Array.of(...Array(16).fill(1)), 1)[0] - (1 - 0.1159) * 0.3611) <
      1e-7,
  );
  assertEquals(LatentNormalization.of(4, { scaling_factor: 1 }).identity, true);
  assertEquals(flux.describe().normalization, "stored = (z - shift_factor) * scaling_factor");
});

Deno.test("normalization: per-channel statistics must have one value per channel", () => {
  let error: unknown;
  try {
    LatentNormalization.of(16, {
      scaling_factor: 1,
      latents_mean: [0, 0, 0, 0],
      latents_std: [1, 1, 1, 1],
    });
  } catch (e) {
    error = e;
  }
  assert(error instanceof NormalizationError);
  assertEquals(
    error.message,
    "model.latents_mean: expected 16 values (one per latent channel of the model), found 4",
  );
});

Deno.test("normalization: the decoder on stored latents is the decoder on z, and its gradient checks out", async () => {
  const n = LatentNormalization.of(4, {
    scaling_factor: 0.7,
    shift_factor: 0.2,
    latents_mean: [0.1, -0.3, 0.5, 0],
    latents_std: [0.5, 1.5, 2, 1],
  });
  const plain = await ort.InferenceSession.create(encodeModel(tinySdDecoder()));
  const wrapped = n.decoderFromStored(tinySdDecoder());
  const stored = await ort.InferenceSession.create(encodeModel(wrapped));
  try {
    const rand = seededRandom(11);
    const s = Float32Array.from({ length: 4 * 2 * 2 }, () => rand() * 2 - 1);
    const dims = [1, 4, 2, 2];
    const a = await stored.run({ [stored.inputNames[0]]: new ort.Tensor("float32", s, dims) });
    const z = n.denormalize(s, 4);
    const b = await plain.run({ [plain.inputNames[0]]: new ort.Tensor("float32", z, dims) });
    const ya = a[stored.outputNames[0]].data as Float32Array;
    const yb = b[plain.outputNames[0]].data as Float32Array;
    let diff = 0;
    for (let i = 0; i < ya.length; i++) diff = Math.max(diff, Math.abs(ya[i] - yb[i]));
    assert(diff < 1e-5, `decoded images differ by ${diff}`);
    assertEquals(stored.inputNames, plain.inputNames, "the input keeps its name");
  } finally {
    await plain.release();
    await stored.release();
  }
  const check = await checkGradient(n.decoderFromStored(tinySdDecoder()), {
    inputShapes: { latent_sample: [1, 4, 2, 2] },
    seed: 5,
  });
  assert(check.relativeError < 1e-3, `gradient ${check.analytic} vs ${check.numeric}`);
});

Deno.test("normalization: statistics for fewer channels than the models have stop encode once", async () => {
  const p = await VaeProject.create(3, 32);
  try {
    const vae = await writeVae(join(p.dir, "vae"), {
      family: "patch",
      latentChannels: 8,
      factor: 8,
    });
    const run = await p.run({
      preprocess: { size: 32 },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: vae.decoder },
        scaling_factor: 1,
        latents_mean: [0, 0, 0, 0],
        latents_std: [1, 1, 1, 1],
        providers: ["cpu"],
      },
    }, ["encode"]);
    assertEquals(run.exitCode, 1);
    assertEquals(run.failed.size, 0);
    assertStringIncludes(
      run.ends.get("encode")?.reason ?? "",
      "model.latents_mean: expected 8 values (one per latent channel of the model), found 4",
    );
  } finally {
    await p.cleanup();
  }
});

Deno.test("normalization: the gradient-free direction is E(D(z)) − E(x) in the stored space", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const vae = await writeVae(dir, { family: "patch", latentChannels: 4, factor: 8 });
    const settings = {
      scaling_factor: 0.6,
      shift_factor: -0.2,
      latents_mean: [0.2, 0, -0.1, 0.4],
      latents_std: [1.5, 0.5, 1, 2],
    };
    const runtime = { providers: ["cpu"], threads: 1, log: () => {} };
    const opened = await openVae({
      encoder: { path: vae.encoder, label: "encoder" },
      decoder: { path: vae.decoder, label: "decoder" },
      model: { ...settings, input_range: [-1, 1] },
      size: 16,
      runtime,
    });
    const decoder = await ModelSession.open(vae.decoder, "decoder", runtime);
    const plainEncoder = await ort.InferenceSession.create(vae.encoder);
    const plainDecoder = await ort.InferenceSession.create(vae.decoder);
    try {
      const latentShape: [number, number, number] = [4, 2, 2];
      const evaluator = gradientFreeEvaluator(opened, decoder, {
        batch: 1,
        latentShape,
        normalization: opened.normalization,
        loss: "l2",
        charbonnierEps: 1e-3,
      });
      const rand = seededRandom(9);
      const s = Float32Array.from({ length: 16 }, () => rand() * 2 - 1);
      const anchor = Float32Array.from({ length: 16 }, () => rand() * 2 - 1);
      const target = new Float32Array(3 * 16 * 16);
      const { directions } = await evaluator.evaluate(s, target, anchor);
      // The same by hand: z by the documented formula, D, E, normalized back, minus the anchor.
      const channel = (i: number) => Math.floor(i / 4);
      const z = Float32Array.from(
        s,
        (v, i) =>
          (v / settings.scaling_factor + settings.shift_factor) *
            settings.latents_std[channel(i)] + settings.latents_mean[channel(i)],
      );
      const image = (await plainDecoder.run({
        latent_sample: new ort.Tensor("float32", z, [1, ...latentShape]),
      })).sample;
      const again = (await plainEncoder.run({ sample: image })).latent_sample.data as Float32Array;
      for (let i = 0; i < 16; i++) {
        const c = channel(i);
        const stored = ((again[i] - settings.latents_mean[c]) / settings.latents_std[c] -
          settings.shift_factor) * settings.scaling_factor;
        assert(
          Math.abs(directions[i] - (stored - anchor[i])) < 1e-5,
          `direction ${i}: ${directions[i]} vs ${stored - anchor[i]}`,
        );
      }
    } finally {
      await opened.encoder.release();
      await decoder.release();
      await plainEncoder.release();
      await plainDecoder.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Latent geometry comes from the models, and a pair that does not fit is one error: an encoder
 * and decoder whose channels or spatial factors disagree, a preset the models contradict, an
 * image size the factor does not divide — each fails `encode` once, naming both files and
 * their shapes, with no per-image failures. A task whose every item failed is not `ok`.
 */
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { writeDemoVae, writeVae } from "./fixtures/vae.ts";
import { type InProcessRun, VaeProject } from "./fixtures/vae_project.ts";
import { GraphBuilder } from "../lib/onnx/graph_builder.ts";
import { writeModel } from "../lib/onnx/model_io.ts";
import { DataType } from "../lib/onnx/tensor.ts";
import { openRecords } from "../lib/store/records.ts";

const IMAGES = 4;

/** Runs encode with the given models and model fields; returns the run. */
async function encodeWith(
  p: VaeProject,
  encoder: string,
  decoder: string,
  model: Record<string, unknown>,
  size = 64,
): Promise<InProcessRun> {
  return await p.run({
    preprocess: { size },
    model: { encoder: { path: encoder }, decoder: { path: decoder }, providers: ["cpu"], ...model },
  }, ["encode"]);
}

/** The run failed encode once, for the task, with a reason holding every `words`. */
function assertOneError(run: InProcessRun, words: string[]): string {
  assertEquals(run.exitCode, 1);
  const end = run.ends.get("encode");
  assertEquals(end?.status, "failed", JSON.stringify(end));
  const perItem = [...run.failed.keys()].filter((k) => k.startsWith("encode "));
  assertEquals(perItem, [], "no image fails on its own for a problem of the models");
  for (const w of words) assertStringIncludes(end!.reason ?? "", w);
  return end!.reason!;
}

Deno.test("geometry: 32 channels at 32× downsampling (DC-AE's geometry) are found and encoded", async () => {
  const p = await VaeProject.create(IMAGES, 64);
  try {
    const vae = await writeVae(join(p.dir, "f32"), {
      family: "patch",
      latentChannels: 32,
      factor: 32,
    });
    const run = await encodeWith(p, vae.encoder, vae.decoder, { scaling_factor: 1 });
    assertEquals(run.exitCode, 0, JSON.stringify(run.ends.get("encode")));
    assertEquals(run.ends.get("encode")?.counts.ran, IMAGES);
    const records = await openRecords(p.cache);
    try {
      const shapes = [...(await records.actions("encode")).values()].map((r) =>
        (r.meta as { shape: number[] }).shape
      );
      assertEquals(shapes, Array(IMAGES).fill([1, 32, 2, 2]));
    } finally {
      records.close();
    }
  } finally {
    await p.cleanup();
  }
});

Deno.test("geometry: encoder and decoder with different latent channels are one error naming both", async () => {
  const p = await VaeProject.create(IMAGES, 64);
  try {
    const a = await writeVae(join(p.dir, "c16"), { family: "sd", latentChannels: 16, factor: 8 });
    const b = await writeVae(join(p.dir, "c4"), { family: "sd", latentChannels: 4, factor: 8 });
    const run = await encodeWith(p, a.encoder, b.decoder, { scaling_factor: 1 });
    const reason = assertOneError(run, [
      `model.encoder (${a.encoder})`,
      `model.decoder (${b.decoder})`,
      "[1, 32, 8, 8]",
      "[batch, 4, lh, lw]",
      "found 32",
    ]);
    console.log(`encode failed once: ${reason}`);
  } finally {
    await p.cleanup();
  }
});

Deno.test("geometry: a 16× encoder with an 8× decoder is one error naming both factors", async () => {
  const p = await VaeProject.create(IMAGES, 64);
  try {
    const a = await writeVae(join(p.dir, "f16"), { family: "sd", latentChannels: 8, factor: 16 });
    const b = await writeVae(join(p.dir, "f8"), { family: "sd", latentChannels: 8, factor: 8 });
    const run = await encodeWith(p, a.encoder, b.decoder, { scaling_factor: 1 });
    assertOneError(run, [
      `model.encoder (${a.encoder}) maps [1, 3, 64, 64] to [1, 16, 4, 4]`,
      `model.decoder (${b.decoder}) maps [1, 8, 4, 4] to [1, 3, 32, 32]`,
      "8× upsampling against the encoder's 16×",
    ]);
  } finally {
    await p.cleanup();
  }
});

Deno.test("geometry: models that contradict their preset are a clear error", async () => {
  const p = await VaeProject.create(IMAGES, 64);
  try {
    const vae = await writeVae(join(p.dir, "c16"), { family: "sd", latentChannels: 16, factor: 8 });
    const run = await encodeWith(p, vae.encoder, vae.decoder, { preset: "sdxl" });
    assertOneError(run, [
      "model.preset sdxl describes 4 latent channels at 8× downsampling",
      `model.decoder (${vae.decoder}) takes 16 channels`,
    ]);
  } finally {
    await p.cleanup();
  }
});

Deno.test("geometry: preprocess.size must be a multiple of the models' spatial factor", async () => {
  const p = await VaeProject.create(IMAGES, 64);
  try {
    const vae = await writeVae(join(p.dir, "f16"), { family: "sd", latentChannels: 4, factor: 16 });
    const run = await encodeWith(p, vae.encoder, vae.decoder, { scaling_factor: 1 }, 40);
    assertOneError(run, [
      "preprocess.size 40 is not a multiple of 16",
      `model.encoder (${vae.encoder})`,
    ]);
  } finally {
    await p.cleanup();
  }
});

Deno.test("geometry: a task whose every item failed ends failed, not ok", async () => {
  const p = await VaeProject.create(IMAGES, 64);
  try {
    const demo = await writeDemoVae(join(p.dir, "demo"));
    // An encoder whose weights are infinite: every image's latent is ±Infinity or NaN.
    const b = new GraphBuilder({ opset: 17 });
    const x = b.input("sample", DataType.FLOAT, ["batch", 3, "height", "width"]);
    const w = b.initializer({
      dtype: DataType.FLOAT,
      dims: [4, 3, 8, 8],
      data: new Float32Array(4 * 3 * 64).fill(Infinity),
    });
    b.output(
      b.node("Conv", [x, w], { kernel_shape: [8, 8], strides: [8, 8] }),
      DataType.FLOAT,
      ["batch", 4, "lh", "lw"],
      "latent_sample",
    );
    const encoder = join(p.dir, "infinite_encoder.onnx");
    await writeModel(encoder, b.graph);
    const run = await encodeWith(p, encoder, demo.decoder, { scaling_factor: 1 });
    assertEquals(run.exitCode, 1);
    const end = run.ends.get("encode")!;
    assertEquals(end.status, "failed");
    assertEquals(end.counts.failed, IMAGES);
    assertEquals(end.reason, `all ${IMAGES} items failed`);
    assert([...run.failed.values()].every((r) => /the encoder gave (-?Infinity|NaN)/.test(r)));
  } finally {
    await p.cleanup();
  }
});

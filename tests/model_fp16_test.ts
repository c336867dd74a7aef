/**
 * float16 models: run as given where the provider has the kernels, rewritten as float32 with one
 * line where it does not, always rewritten for a preset known to overflow in float16 (SDXL), and
 * the loss-and-gradient graph always in float32 — through the whole pipeline.
 */
import { join } from "node:path";
import onnxProto from "onnx-proto";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { writeVae } from "./fixtures/vae.ts";
import { VaeProject } from "./fixtures/vae_project.ts";
import { floatToHalf, halfToFloat } from "../lib/model/fp16.ts";
import { ModelSession } from "../lib/model/model_session.ts";
import { PRESETS } from "../lib/model/presets.ts";
import { seededRandom } from "../lib/base/random.ts";

const { onnx } = onnxProto;

Deno.test("fp16: values convert to and from float16 bit patterns as IEEE 754 says", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff],
    [65520, 0x7c00], // rounds past the largest float16: infinity
    [2 ** -24, 0x0001], // the smallest subnormal
    [1 + 2 ** -11, 0x3c00], // a tie rounds to even
    [1 + 3 * 2 ** -11, 0x3c02],
    [0, 0],
  ];
  for (const [value, bits] of cases) {
    assertEquals(floatToHalf(value), bits, `floatToHalf(${value})`);
  }
  assertEquals(halfToFloat(0x7c00), Infinity);
  assert(Number.isNaN(halfToFloat(floatToHalf(NaN))));
  const rand = seededRandom(2);
  for (let i = 0; i < 1000; i++) {
    const x = (rand() * 2 - 1) * 100;
    const back = halfToFloat(floatToHalf(x));
    assert(Math.abs(back - x) <= Math.abs(x) * 2 ** -11, `${x} → ${back}`);
  }
});

Deno.test("fp16: a float16 VAE runs as given on the CPU, or as float32 with one line when told it overflows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const vae = await writeVae(dir, {
      family: "taesd",
      latentChannels: 4,
      factor: 8,
      float16: true,
    });
    const lines: string[] = [];
    const runtime = { providers: ["cpu"], threads: 1, log: (l: string) => lines.push(l) };
    const given = await ModelSession.open(vae.encoder, "model.encoder", runtime);
    const upcast = await ModelSession.open(vae.encoder, "model.encoder", runtime, {
      float16Overflow: PRESETS.sdxl.fp16Overflow,
    });
    try {
      assertEquals([given.input.type, given.upcast], ["float16", false]);
      assertEquals([upcast.input.type, upcast.upcast], ["float32", true]);
      assertEquals(lines, [
        "model.encoder: running on cpu",
        `model.encoder is float16 and ${PRESETS.sdxl.fp16Overflow}; running it as float32`,
        "model.encoder: running on cpu (as float32)",
      ]);
      const rand = seededRandom(4);
      const image = Float32Array.from({ length: 3 * 32 * 32 }, () => rand());
      const a = await given.run(image, [1, 3, 32, 32]);
      const b = await upcast.run(image, [1, 3, 32, 32]);
      assertEquals(a.dims, [1, 4, 4, 4]);
      assert(a.data instanceof Float32Array && b.data instanceof Float32Array);
      let scale = 0, diff = 0;
      for (let i = 0; i < a.data.length; i++) {
        scale = Math.max(scale, Math.abs(b.data[i]));
        diff = Math.max(diff, Math.abs(a.data[i] - b.data[i]));
      }
      // float16 activations against float32 ones: a few float16 ulps apart, not more.
      assert(diff <= 2e-2 * scale, `float16 and float32 runs differ by ${diff} (scale ${scale})`);
    } finally {
      await given.release();
      await upcast.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fp16: a float16 model no provider opens as given is rewritten as float32", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Range has no float16 variant: as float16 the model cannot open, as float32 it can.
    const half = (v: number) => ({
      dataType: 10,
      dims: [],
      rawData: new Uint8Array(new Uint16Array([floatToHalf(v)]).buffer),
    });
    const model = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: "", version: 17 }],
      graph: {
        name: "g",
        node: [
          { opType: "Range", input: ["start", "limit", "delta"], output: ["r"] },
          { opType: "Add", input: ["x", "r"], output: ["y"] },
        ],
        initializer: [
          { name: "start", ...half(0) },
          { name: "limit", ...half(4) },
          { name: "delta", ...half(1) },
        ],
        input: [{
          name: "x",
          type: { tensorType: { elemType: 10, shape: { dim: [{ dimValue: 4 }] } } },
        }],
        output: [{
          name: "y",
          type: { tensorType: { elemType: 10, shape: { dim: [{ dimValue: 4 }] } } },
        }],
      },
    });
    const path = join(dir, "range_fp16.onnx");
    await Deno.writeFile(path, onnx.ModelProto.encode(model).finish());
    const lines: string[] = [];
    const session = await ModelSession.open(path, "model.decoder", {
      providers: ["cpu"],
      log: (l) => lines.push(l),
    });
    try {
      assertEquals(session.upcast, true);
      assertEquals(lines.length, 2);
      assertMatch(
        lines[0],
        /^model\.decoder is float16 and no provider runs it as given \(tried cpu \(.+\)\); running it as float32$/,
      );
      const out = await session.run(Float32Array.of(10, 10, 10, 10), [4]);
      assertEquals([...out.data], [10, 11, 12, 13]);
    } finally {
      await session.release();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fp16: a float16 SDXL-preset VAE goes through the pipeline as float32, saying why once per model", async () => {
  const p = await VaeProject.create(2, 32);
  try {
    const vae = await writeVae(join(p.dir, "vae"), {
      family: "sd",
      latentChannels: 4,
      factor: 8,
      float16: true,
    });
    const run = await p.run({
      preprocess: { size: 32 },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: vae.decoder },
        preset: "sdxl",
        providers: ["cpu"],
        threads: 1,
      },
      optimize: { max_steps: 2, batch_size: 2, tolerance: 0 },
      package: { samples: 1 },
    });
    assertEquals(run.exitCode, 0, JSON.stringify([...run.ends.values()]));
    const said = run.logs.map((l) => `${l.task}: ${l.message}`);
    assertEquals(
      said.filter((l) => l.includes("overflows in float16")),
      [`encode: model.encoder (${vae.encoder}) is float16 and ${PRESETS.sdxl.fp16Overflow}; running it as float32`],
    );
    assertEquals(
      said.filter((l) => l.includes("loss-and-gradient graph runs in float32")),
      [`optimize: model.decoder (${vae.decoder}) is float16; its loss-and-gradient graph runs in float32`],
    );
  } finally {
    await p.cleanup();
  }
});

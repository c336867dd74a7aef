// Model I/O (with external data), constant folding and shape inference, and sessions.
import * as ort from "onnxruntime-node";
import { SessionError } from "../lib/onnx/errors.ts";
import { foldGraph } from "../lib/onnx/fold.ts";
import { inferShapes } from "../lib/onnx/shape_inference.ts";
import { seededRandom } from "../lib/base/random.ts";
import type { Graph } from "../lib/onnx/graph.ts";
import { GraphBuilder } from "../lib/onnx/graph_builder.ts";
import { encodeModel, readGraph, readModel, writeModel } from "../lib/onnx/model_io.ts";
import { openSession } from "../lib/onnx/session.ts";
import { DataType, sizeOf } from "../lib/onnx/tensor.ts";
import { tinySdDecoder, writeDemoVae, writeSdDecoder, writeTinyVae } from "./fixtures/vae.ts";

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

async function runModel(
  model: string | Uint8Array,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, ort.Tensor>> {
  const { session } = await openSession(model, { providers: ["cpu"], intraOpThreads: 1 });
  const out = await session.run(feeds);
  await session.release();
  return out;
}

function latent(dims: number[], seed = 1): ort.Tensor {
  const r = seededRandom(seed);
  return new ort.Tensor(
    "float32",
    Float32Array.from({ length: sizeOf(dims) }, () => r() * 2 - 1),
    dims,
  );
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert(a.length === b.length, `lengths ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("model I/O: external data weights round-trip and load in ONNX Runtime", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const graph = tinySdDecoder();
    await writeModel(`${dir}/embedded.onnx`, graph);
    await writeModel(`${dir}/split.onnx`, graph, { externalData: "split.onnx.data" });
    const embedded = (await Deno.stat(`${dir}/embedded.onnx`)).size;
    const split = (await Deno.stat(`${dir}/split.onnx`)).size;
    const data = (await Deno.stat(`${dir}/split.onnx.data`)).size;
    assert(split < embedded / 2 && data > embedded / 2, `sizes: ${embedded} vs ${split} + ${data}`);
    const z = latent([1, 4, 3, 3]);
    const a = (await runModel(`${dir}/embedded.onnx`, { latent_sample: z })).sample
      .data as Float32Array;
    // The runtime resolves the external file itself …
    const b = (await runModel(`${dir}/split.onnx`, { latent_sample: z })).sample
      .data as Float32Array;
    // … and readModel inlines it again.
    const reread = encodeModel(await readModel(`${dir}/split.onnx`));
    const c = (await runModel(reread, { latent_sample: z })).sample.data as Float32Array;
    assert(a.length === 3 * 24 * 24, `output size ${a.length}`);
    assert(maxAbsDiff(a, b) === 0 && maxAbsDiff(a, c) === 0, "outputs differ after round trip");
    await Deno.remove(`${dir}/split.onnx.data`);
    const err = await readModel(`${dir}/split.onnx`).catch((e) => e as Error);
    assert(err instanceof Error && err.message.includes("split.onnx.data"), `missing data: ${err}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("folding: exporter shape chains become constants and outputs are unchanged", async () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", DataType.FLOAT, ["n", 3, "h", "w"]);
  const shape = b.node("Shape", [x]);
  const hw = b.node("Slice", [shape, b.int64s([2]), b.int64s([4]), b.int64s([0])]);
  const n = b.node("Gather", [shape, b.constant(DataType.INT64, [], [0])], { axis: 0 });
  const target = b.node("Concat", [b.node("Unsqueeze", [n, b.int64s([0])]), b.int64s([3]), hw], {
    axis: 0,
  });
  // ConstantOfShape → Mul → Equal → Where, as in exported `expand` / `view(-1)` patterns.
  const ones = b.node("ConstantOfShape", [b.node("Shape", [target])], {
    value: { dtype: DataType.INT64, dims: [1], data: Float64Array.of(1) },
  });
  const minus = b.node("Mul", [ones, b.constant(DataType.INT64, [], [-1])]);
  const eq = b.node("Equal", [target, minus]);
  const fixed = b.node("Where", [eq, ones, target]);
  const range = b.node("Cast", [b.node("Range", [
    b.constant(DataType.INT64, [], [0]),
    b.constant(DataType.INT64, [], [3]),
    b.constant(DataType.INT64, [], [1]),
  ])], { to: DataType.FLOAT });
  const bias = b.node("Expand", [
    b.node("Reshape", [range, b.int64s([3, 1, 1])]),
    b.int64s([3, 4, 1]),
  ]);
  const y = b.node("Add", [b.node("Reshape", [x, fixed]), b.node("Identity", [bias])]);
  b.output(b.node("Sqrt", [b.node("Mul", [y, y])]), DataType.FLOAT, ["n", 3, "h", "w"]);
  const { graph, shapes } = foldGraph(b.graph, { inputShapes: { x: [2, 3, 4, 5] } });
  const ops = graph.nodes.map((nd) => nd.opType);
  assert(JSON.stringify(ops) === JSON.stringify(["Reshape", "Add", "Mul", "Sqrt"]), `left: ${ops}`);
  for (const nd of graph.nodes) {
    for (const o of nd.outputs) {
      assert(JSON.stringify(shapes.get(o)?.dims) === "[2,3,4,5]", `${o}: ${shapes.get(o)?.dims}`);
    }
  }
  const folded: Graph = {
    ...graph,
    inputs: [{ name: "x", dtype: DataType.FLOAT, dims: [2, 3, 4, 5] }],
  };
  const xv = latent([2, 3, 4, 5], 3);
  const before = (await runModel(b.toBytes(), { x: xv }))[b.graph.outputs[0].name]
    .data as Float32Array;
  const after = (await runModel(encodeModel(folded), { x: xv }))[graph.outputs[0].name]
    .data as Float32Array;
  assert(maxAbsDiff(before, after) === 0, "folded graph computes something else");
});

Deno.test("folding: the tiny SD decoder keeps only static-shaped compute nodes", () => {
  const { graph, shapes } = foldGraph(tinySdDecoder(), {
    inputShapes: { latent_sample: [2, 4, 3, 5] },
  });
  const left = new Set(graph.nodes.map((n) => n.opType));
  for (const op of ["Shape", "Gather", "Unsqueeze", "Concat", "Constant", "Identity"]) {
    assert(!left.has(op), `${op} survived folding`);
  }
  assert(
    JSON.stringify(shapes.get(graph.outputs[0].name)?.dims) === "[2,3,24,40]",
    `output ${shapes.get(graph.outputs[0].name)?.dims}`,
  );
  // Shape inference on the folded graph records every value, matching what folding saw.
  const again = inferShapes(graph, { latent_sample: [2, 4, 3, 5] });
  for (const n of graph.nodes) {
    for (const o of n.outputs) {
      const a = JSON.stringify(again.get(o)?.dims), b = JSON.stringify(shapes.get(o)?.dims);
      assert(a !== undefined && a === b, `${o}: ${a} vs ${b}`);
    }
  }
});

Deno.test("sessions: an unavailable provider falls back with a log line; none left is an error", async () => {
  const b = new GraphBuilder();
  const x = b.input("x", DataType.FLOAT, [2]);
  b.output(b.node("Neg", [x]), DataType.FLOAT, [2]);
  const lines: string[] = [];
  const opened = await openSession(b.toBytes(), {
    providers: ["cuda", "cpu"],
    intraOpThreads: 1,
    log: (l) => lines.push(l),
  });
  assert(opened.provider === "cpu", `provider ${opened.provider}`);
  assert(
    lines.length === 1 && /^provider cuda unavailable \(.+\), falling back to cpu$/.test(lines[0]),
    `log: ${lines}`,
  );
  const out = await opened.session.run({
    x: new ort.Tensor("float32", Float32Array.of(1, -2), [2]),
  });
  assert(
    JSON.stringify(Array.from(out[b.graph.outputs[0].name].data as Float32Array)) === "[-1,2]",
    "wrong result",
  );
  await opened.session.release();
  const err = await openSession(b.toBytes(), { providers: ["cuda"], log: () => {} }).catch((e) =>
    e
  );
  assert(err instanceof SessionError, `expected SessionError, got ${err}`);
  assert(String(err.message).includes("tried cuda ("), `message: ${err.message}`);
});

Deno.test("fixtures: tiny VAE, demo VAE and a reduced SD decoder are written and run", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tiny = await writeTinyVae(`${dir}/tiny`, { encoderOutput: "moments" });
    const img = latent([1, 3, 32, 32], 4);
    const moments = (await runModel(tiny.encoder, { sample: img })).latent_sample;
    assert(JSON.stringify(moments.dims) === "[1,8,4,4]", `moments ${moments.dims}`);
    const demo = await writeDemoVae(`${dir}/demo`);
    // A smooth image survives the demo VAE's round trip closely but not exactly.
    const smooth = new Float32Array(3 * 64 * 64);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 64 * 64; i++) {
        smooth[c * 4096 + i] = 0.6 * Math.sin((i % 64) / 9 + c) * Math.cos(Math.floor(i / 64) / 11);
      }
    }
    const z =
      (await runModel(demo.encoder, { sample: new ort.Tensor("float32", smooth, [1, 3, 64, 64]) }))
        .latent_sample;
    assert(JSON.stringify(z.dims) === "[1,4,8,8]", `demo latent ${z.dims}`);
    const rec = (await runModel(demo.decoder, { latent_sample: z })).sample.data as Float32Array;
    let mse = 0;
    for (let i = 0; i < rec.length; i++) mse += (rec[i] - smooth[i]) ** 2 / rec.length;
    const psnr = 10 * Math.log10(4 / mse);
    assert(psnr > 20 && psnr < 60, `demo VAE round trip PSNR ${psnr.toFixed(1)} dB`);
    const sd = await writeSdDecoder(`${dir}/sd`, { channels: [64, 32], layersPerBlock: 1 });
    const index = JSON.parse(await Deno.readTextFile(`${sd.weightsDir}/index.json`));
    assert(
      index.names.length === sd.weights.length && sd.weights.length > 20,
      `${sd.weights.length} weights`,
    );
    const g = await readGraph(sd.model);
    assert(g.initializers.size > 20, "weights not read back from external data");
    const out = (await runModel(sd.model, { latent_sample: latent([1, 4, 4, 4]) })).sample;
    assert(JSON.stringify(out.dims) === "[1,3,8,8]", `sd decoder output ${out.dims}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

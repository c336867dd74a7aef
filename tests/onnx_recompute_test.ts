// Recomputation in the backward pass: exact gradients (finite differences, and equal to the
// graph that keeps everything), less kept, and ONNX Runtime running the copies where intended.
import * as ort from "onnxruntime-node";
import { checkGradient } from "../lib/onnx/gradient_check.ts";
import { seededRandom } from "../lib/base/random.ts";
import { graphFromModel } from "../lib/onnx/graph.ts";
import { GraphBuilder } from "../lib/onnx/graph_builder.ts";
import { buildLossAndGradient } from "../lib/onnx/loss_gradient.ts";
import { estimateMemory, onnxRuntimeOrder } from "../lib/onnx/memory_estimate.ts";
import { decodeModel, readModel } from "../lib/onnx/model_io.ts";
import { recomputeInBackward } from "../lib/onnx/recompute.ts";
import { inferShapes } from "../lib/onnx/shape_inference.ts";
import { DataType, sizeOf } from "../lib/onnx/tensor.ts";
import { appendVjp } from "../lib/onnx/vjp.ts";
import { tinySdDecoder } from "./fixtures/vae.ts";

const F = DataType.FLOAT;

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

function randomArray(n: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

/**
 * Conv → GroupNorm (as exported) → SiLU → Conv, plus a residual Add and a unary Sigmoid on a
 * kept value: chains whose first copied op reads a small constant (the norm's scale) and
 * chains whose first copied op reads only full-size values (Sigmoid, Mul).
 */
function normBlock(): GraphBuilder {
  const b = new GraphBuilder({ opset: 17 });
  const r = seededRandom(3);
  const w = (dims: number[], s: number) =>
    b.constant(F, dims, Array.from({ length: sizeOf(dims) }, () => (r() * 2 - 1) * s));
  const x = b.input("x", F, [2, 8, 6, 6]);
  const conv = (v: string) =>
    b.node("Conv", [v, w([8, 8, 3, 3], 0.3), w([8], 0.1)], { pads: [1, 1, 1, 1] });
  const h = conv(x);
  const g = b.node("Reshape", [h, b.int64s([0, 4, -1])]);
  const n = b.node("InstanceNormalization", [g, b.constant(F, [4], [1, 1, 1, 1]), w([4], 0)], {
    epsilon: { float: 1e-5 },
  });
  const back = b.node("Reshape", [n, b.int64s([2, 8, 6, 6])]);
  const a = b.node("Add", [b.node("Mul", [back, w([8, 1, 1], 1)]), w([8, 1, 1], 0.2)]);
  const s = b.node("Mul", [a, b.node("Sigmoid", [a])]);
  const y = b.node("Add", [conv(s), h]);
  const out = b.node("Mul", [y, b.node("Sigmoid", [y])]);
  b.output(out, F, [2, 8, 6, 6]);
  return b;
}

Deno.test("recompute: a GroupNorm/SiLU block's gradient matches finite differences", async () => {
  const b = normBlock();
  // checkGradient builds its VJP graph with recomputation (the default).
  const r = await checkGradient(b.graph, { inputShapes: { x: [2, 8, 6, 6] }, seed: 4 });
  assert(
    r.relativeError <= 1e-3,
    `analytic ${r.analytic} vs numeric ${r.numeric}: relative error ${r.relativeError}`,
  );
});

Deno.test("recompute: loss and gradient equal those of the graph that keeps every value", async () => {
  const dec = tinySdDecoder();
  const opts = { batch: 2, latentShape: [4, 3, 4], withReconstruction: true };
  const kept = await buildLossAndGradient(dec, { ...opts, recompute: false });
  const again = await buildLossAndGradient(dec, { ...opts, recompute: true });
  const feeds = {
    latent: new ort.Tensor("float32", randomArray(sizeOf(kept.latentDims), 21), kept.latentDims),
    target: new ort.Tensor("float32", randomArray(sizeOf(kept.imageDims), 22), kept.imageDims),
  };
  const run = async (bytes: Uint8Array) => {
    const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
    const out = await s.run(feeds);
    await s.release();
    return out;
  };
  const a = await run(kept.bytes), c = await run(again.bytes);
  for (const name of ["loss", "latent_grad", "reconstruction"]) {
    const x = a[name].data as Float32Array, y = c[name].data as Float32Array;
    let diff = 0, size = 0;
    for (let i = 0; i < x.length; i++) {
      diff = Math.max(diff, Math.abs(x[i] - y[i]));
      size = Math.max(size, Math.abs(x[i]));
    }
    assert(diff <= 1e-6 * size, `${name}: differs by ${diff} (largest value ${size})`);
  }
});

Deno.test("recompute: the backward pass keeps less, and every copy runs after the loss", async () => {
  const dec = tinySdDecoder();
  const opts = { batch: 2, latentShape: [4, 8, 8] };
  const peak = async (recompute: boolean) => {
    const built = await buildLossAndGradient(dec, { ...opts, recompute });
    const g = graphFromModel(decodeModel(built.bytes));
    const shapes = inferShapes(g, { latent: built.latentDims, target: built.imageDims });
    return { g, m: estimateMemory(g, shapes) };
  };
  const kept = await peak(false), again = await peak(true);
  assert(
    again.m.peakBytes < 0.8 * kept.m.peakBytes,
    `estimated peak ${again.m.peakBytes} B with recompute, ${kept.m.peakBytes} B without`,
  );
  // In the GroupNorm → SiLU → Conv block, of the norm's input, its output, the sigmoid and the
  // SiLU (all the backward pass reads), only the norm's input stays, and of the last SiLU only
  // its input: two tensors of [2, 8, 6, 6].
  const b = normBlock();
  const shapes = inferShapes(b.graph, { x: [2, 8, 6, 6] });
  const out = b.graph.outputs[0].name;
  b.graph.outputs = [];
  const seed = b.input("seed", F, [2, 8, 6, 6]);
  shapes.set(seed, { dims: [2, 8, 6, 6], dtype: F });
  const grads = appendVjp(b, { seeds: { [out]: seed }, wrt: ["x"], shapes });
  b.output(grads.x, F, [2, 8, 6, 6], "x_grad");
  const r = recomputeInBackward(b, { seeds: [seed], shapes });
  assert(
    r.bytesAfter === 2 * 2 * 8 * 6 * 6 * 4 && r.bytesBefore > r.bytesAfter && r.copies > 0,
    `keeps ${r.bytesAfter} B instead of ${r.bytesBefore} B, ${r.copies} copies`,
  );
  const order = onnxRuntimeOrder(again.g);
  const loss = order.findIndex((n) => n.inputs.includes("target"));
  const copies = order.map((n, i) => [n, i] as const).filter(([n]) =>
    n.name.endsWith("__recomputed")
  );
  assert(copies.length > 0, "nothing was recomputed");
  const early = copies.filter(([, i]) => i < loss).map(([n]) => n.name);
  assert(early.length === 0, `copies scheduled before the loss: ${early.join(", ")}`);
});

Deno.test("recompute: ONNX Runtime's optimizer keeps the copies apart from the forward pass", async () => {
  const dec = tinySdDecoder();
  const built = await buildLossAndGradient(dec, { batch: 1, latentShape: [4, 4, 4] });
  const dir = await Deno.makeTempDir({ prefix: "latentforge-recompute-" });
  try {
    const path = `${dir}/optimized.onnx`;
    const s = await ort.InferenceSession.create(built.bytes, {
      graphOptimizationLevel: "all",
      optimizedModelFilePath: path,
      intraOpNumThreads: 1,
      logSeverityLevel: 3,
    });
    await s.release();
    const g = graphFromModel(await readModel(path));
    // Common-subexpression elimination would merge a copy with its original: each forward
    // norm must still have its copy, and the saved model lists nodes in execution order.
    const norms = dec.nodes.filter((n) => n.opType === "InstanceNormalization").length;
    const found = g.nodes.filter((n) => n.opType === "InstanceNormalization");
    assert(
      found.length === 2 * norms,
      `${found.length} norms after optimization, ${2 * norms} built`,
    );
    const loss = g.nodes.findIndex((n) => n.inputs.includes("target"));
    const early = g.nodes.slice(0, loss).filter((n) => n.name.includes("__recomputed"));
    assert(
      early.length === 0,
      `ONNX Runtime runs copies before the loss: ${early.map((n) => n.name).join(", ")}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

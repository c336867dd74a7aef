// The gradient on the real exported decoder (PyTorch export, opset 17, dynamic shapes).
import * as ort from "onnxruntime-node";
import { checkGradient } from "../lib/onnx/gradient_check.ts";
import { seededRandom } from "../lib/base/random.ts";
import { buildLossAndGradient } from "../lib/onnx/loss_gradient.ts";
import { readGraph } from "../lib/onnx/model_io.ts";
import { openSession } from "../lib/onnx/session.ts";
import { sizeOf } from "../lib/onnx/tensor.ts";
import { requirement, testIf } from "./fixtures/skip.ts";

const MODEL =
  new URL("../../shared/models/vae-small-bsds/vae_decoder.onnx", import.meta.url).pathname;
const present = (() => {
  try {
    return Deno.statSync(MODEL).isFile;
  } catch {
    return false;
  }
})();
const DECODER = requirement(
  "absent-data",
  present,
  `${MODEL} is absent (the shared trained VAE; a fresh clone does not have it)`,
);

/** Relative tolerance of the directional derivative (float32, five-point stencil, ε = 1e-2). */
const TOLERANCE = 1e-3;

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

testIf(DECODER, {
  name: "real exported decoder: directional derivative matches finite differences",
  fn: async () => {
    const graph = await readGraph(MODEL);
    for (const [dims, seed] of [[[1, 4, 4, 4], 2], [[2, 4, 6, 4], 3]] as const) {
      const r = await checkGradient(graph, { inputShapes: { latent_sample: [...dims] }, seed });
      assert(
        r.relativeError <= TOLERANCE,
        `latent [${dims}]: analytic ${r.analytic}, numeric ${r.numeric}, relative error ${r.relativeError}`,
      );
    }
  },
});

testIf(DECODER, {
  name: "real exported decoder: plain gradient descent on the latent lowers the L2 loss",
  fn: async () => {
    const built = await buildLossAndGradient(MODEL, {
      batch: 1,
      latentShape: [4, 8, 8],
      loss: "l2",
      withReconstruction: true,
    });
    assert(JSON.stringify(built.imageDims) === "[1,3,64,64]", `image ${built.imageDims}`);
    const { session } = await openSession(built.bytes, { providers: ["cpu"], intraOpThreads: 2 });
    const r = seededRandom(8);
    // A smooth colour gradient as target; start from a zero latent.
    const target = new Float32Array(sizeOf(built.imageDims));
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 4096; i++) {
        target[c * 4096 + i] = ((i % 64) / 32 - 1) * (c === 0 ? 0.8 : 0.3);
      }
    }
    let z = Float32Array.from({ length: sizeOf(built.latentDims) }, () => (r() - 0.5) * 0.1);
    const losses: number[] = [];
    for (let step = 0; step < 5; step++) {
      const out = await session.run({
        latent: new ort.Tensor("float32", z, built.latentDims),
        target: new ort.Tensor("float32", target, built.imageDims),
      });
      losses.push((out.loss.data as Float32Array)[0]);
      const g = out.latent_grad.data as Float32Array;
      let norm = 0;
      for (const v of g) norm += v * v;
      const scale = 0.1 / Math.sqrt(norm / g.length + 1e-20);
      z = Float32Array.from(z, (v, i) => v - 0.2 * scale * g[i]);
    }
    await session.release();
    for (let i = 1; i < losses.length; i++) {
      assert(losses[i] < losses[i - 1], `loss rose at step ${i}: ${losses}`);
    }
  },
});

testIf(DECODER, {
  name: "real exported decoder: the fused upsample → conv graph gives the same loss and gradient",
  fn: async () => {
    const opts = { batch: 2, latentShape: [4, 4, 6], loss: "charbonnier" as const };
    const fused = await buildLossAndGradient(MODEL, opts);
    const plain = await buildLossAndGradient(MODEL, { ...opts, fuseUpsampleConv: false });
    const r = seededRandom(21);
    const z = Float32Array.from({ length: sizeOf(fused.latentDims) }, () => r() * 2 - 1);
    const t = Float32Array.from({ length: sizeOf(fused.imageDims) }, () => r() * 2 - 1);
    const results = [];
    for (const built of [fused, plain]) {
      const { session } = await openSession(built.bytes, { providers: ["cpu"], intraOpThreads: 2 });
      const out = await session.run({
        latent: new ort.Tensor("float32", z, built.latentDims),
        target: new ort.Tensor("float32", t, built.imageDims),
      });
      results.push({
        loss: out.loss.data as Float32Array,
        grad: out.latent_grad.data as Float32Array,
      });
      await session.release();
    }
    const [a, b] = results;
    let num = 0, den = 0;
    for (let i = 0; i < a.grad.length; i++) {
      num = Math.max(num, Math.abs(a.grad[i] - b.grad[i]));
      den = Math.max(den, Math.abs(b.grad[i]));
    }
    assert(num / den < 1e-4, `gradients differ by ${num / den} (relative to the largest entry)`);
    for (let i = 0; i < 2; i++) {
      assert(
        Math.abs(a.loss[i] - b.loss[i]) < 1e-5 * Math.abs(b.loss[i]),
        `loss ${a.loss[i]} vs ${b.loss[i]}`,
      );
    }
  },
});

// Whole-decoder gradients: finite-difference checks on the tiny SD-shaped and TAESD-shaped
// decoders built by the project's own builder, the loss graph, descent, and error reports.
import * as ort from "onnxruntime-node";
import { ShapeError, UnsupportedOpError } from "../lib/onnx/errors.ts";
import { checkGradient } from "../lib/onnx/gradient_check.ts";
import { seededRandom } from "../lib/base/random.ts";
import { GraphBuilder } from "../lib/onnx/graph_builder.ts";
import { buildLossAndGradient, type LossKind } from "../lib/onnx/loss_gradient.ts";
import { decodeModel, encodeModel } from "../lib/onnx/model_io.ts";
import { graphFromModel } from "../lib/onnx/graph.ts";
import { openSession } from "../lib/onnx/session.ts";
import { DataType, sizeOf } from "../lib/onnx/tensor.ts";
import { taesdDecoder, tinySdDecoder, writeDemoVae } from "./fixtures/vae.ts";

/** Relative tolerance of the directional derivative on whole decoders (float32, ε = 1e-2). */
const DECODER_TOLERANCE = 2e-3;
/** Relative tolerance of the loss graph's gradient (losses summed in float64, ε = 1e-2). */
const LOSS_TOLERANCE = 2e-3;

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

async function assertRejects(
  fn: () => Promise<unknown>,
  cls: new (...a: never[]) => Error,
  ...parts: string[]
) {
  try {
    await fn();
  } catch (e) {
    assert(
      e instanceof cls,
      `expected ${cls.name}, got ${(e as Error).name}: ${(e as Error).message}`,
    );
    for (const p of parts) {
      assert((e as Error).message.includes(p), `message "${(e as Error).message}" lacks "${p}"`);
    }
    return (e as Error).message;
  }
  throw new Error(`expected ${cls.name}, nothing was thrown`);
}

function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

Deno.test("tiny SD-shaped decoder: directional derivative matches finite differences", async () => {
  const r = await checkGradient(tinySdDecoder(), {
    inputShapes: { latent_sample: [2, 4, 4, 4] },
    seed: 3,
  });
  assert(
    r.relativeError <= DECODER_TOLERANCE,
    `analytic ${r.analytic} vs numeric ${r.numeric}: relative error ${r.relativeError}`,
  );
});

Deno.test("TAESD-shaped decoder: directional derivative matches finite differences", async () => {
  // Relu kinks: units crossing zero within the step bias the difference in proportion to ε,
  // so this deep Relu net needs a small step.
  const r = await checkGradient(taesdDecoder(), {
    inputShapes: { latent_sample: [1, 4, 4, 4] },
    seed: 5,
    eps: 1e-4,
  });
  assert(
    r.relativeError <= DECODER_TOLERANCE,
    `analytic ${r.analytic} vs numeric ${r.numeric}: relative error ${r.relativeError}`,
  );
});

async function evalLoss(
  bytes: Uint8Array,
  feeds: Record<string, ort.Tensor>,
): Promise<{ loss: Float32Array; grad: Float32Array; rec?: Float32Array }> {
  const { session } = await openSession(bytes, { providers: ["cpu"], intraOpThreads: 1 });
  const out = await session.run(feeds);
  const res = {
    loss: out.loss.data as Float32Array,
    grad: out.latent_grad.data as Float32Array,
    rec: out.reconstruction?.data as Float32Array | undefined,
  };
  await session.release();
  return res;
}

for (const loss of ["l2", "l1", "charbonnier"] as LossKind[]) {
  Deno.test(`loss graph (${loss}, weighted): per-image loss values and gradient`, async () => {
    const dec = tinySdDecoder();
    const built = await buildLossAndGradient(dec, {
      batch: 2,
      latentShape: [4, 2, 2],
      loss,
      charbonnierEps: 0.05,
      withReconstruction: true,
      withWeight: true,
    });
    const [n, c, h, w] = built.imageDims;
    assert(c === 3 && h === 16 && w === 16, `image dims [${built.imageDims}]`);
    const z = randomArray(sizeOf(built.latentDims), 1);
    let t = new Float32Array(sizeOf(built.imageDims));
    const wt = Float32Array.from(randomArray(n * h * w, 3), (v) => 0.5 + 0.5 * Math.abs(v));
    const feeds = (zz: Float32Array) => ({
      latent: new ort.Tensor("float32", zz, built.latentDims),
      target: new ort.Tensor("float32", t, built.imageDims),
      weight: new ort.Tensor("float32", wt, [n, 1, h, w]),
    });
    const sess = await openSession(built.bytes, { providers: ["cpu"], intraOpThreads: 1 });
    const run = async (zz: Float32Array) => {
      const o = await sess.session.run(feeds(zz));
      return {
        loss: o.loss.data as Float32Array,
        grad: o.latent_grad.data as Float32Array,
        rec: o.reconstruction.data as Float32Array,
      };
    };
    // The target sits at least 0.1 away from the reconstruction at z in every pixel, so that
    // no step of the finite difference crosses the kink of |d| (or the bend of Charbonnier).
    const offsets = randomArray(t.length, 2);
    const rec0 = (await run(z)).rec;
    t = Float32Array.from(
      rec0,
      (r, i) => r + Math.sign(offsets[i]) * (0.1 + 0.4 * Math.abs(offsets[i])),
    );
    const base = await run(z);
    // The loss is recomputed here in float64 from the reconstruction, per image.
    const lossOf = (rec: Float32Array) =>
      Array.from({ length: n }, (_, i) => {
        let sum = 0;
        for (let k = 0; k < c * h * w; k++) {
          const idx = i * c * h * w + k;
          const d = rec[idx] - t[idx];
          const term = loss === "l2"
            ? d * d
            : loss === "l1"
            ? Math.abs(d)
            : Math.sqrt(d * d + 0.0025);
          sum += term * wt[i * h * w + (k % (h * w))];
        }
        return sum / (c * h * w);
      });
    const expected = lossOf(base.rec);
    for (let i = 0; i < n; i++) {
      assert(
        Math.abs(base.loss[i] - expected[i]) <= 1e-5 * Math.max(1, Math.abs(expected[i])),
        `image ${i}: loss ${base.loss[i]}, expected ${expected[i]}`,
      );
    }
    const v = randomArray(z.length, 4);
    const eps = 1e-2;
    const shifted = (k: number) => Float32Array.from(z, (x, i) => x + k * eps * v[i]);
    const total = async (k: number) => {
      const rec = (await run(shifted(k))).rec;
      return lossOf(rec).reduce((x, y) => x + y, 0);
    };
    const numeric = (8 * await total(1) - 8 * await total(-1) - await total(2) + await total(-2)) /
      (12 * eps);
    let analytic = 0;
    for (let i = 0; i < z.length; i++) analytic += base.grad[i] * v[i];
    const rel = Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric));
    await sess.session.release();
    assert(rel <= LOSS_TOLERANCE, `${loss}: analytic ${analytic}, numeric ${numeric}, rel ${rel}`);
  });
}

for (
  const [name, make] of [["tiny SD-shaped", tinySdDecoder], ["TAESD-shaped", taesdDecoder]] as const
) {
  Deno.test(`${name} decoder: gradient descent on the latent lowers the loss`, async () => {
    const dec = make({});
    const built = await buildLossAndGradient(dec, { batch: 2, latentShape: [4, 4, 4], loss: "l2" });
    const { session } = await openSession(built.bytes, { providers: ["cpu"], intraOpThreads: 1 });
    // Target: the decoding of a hidden latent; start from a perturbed copy of it.
    const fwd = await buildLossAndGradient(dec, {
      batch: 2,
      latentShape: [4, 4, 4],
      withReconstruction: true,
    });
    const zStar = randomArray(sizeOf(built.latentDims), 9);
    const zeros = new Float32Array(sizeOf(built.imageDims));
    const ref = await evalLoss(fwd.bytes, {
      latent: new ort.Tensor("float32", zStar, built.latentDims),
      target: new ort.Tensor("float32", zeros, built.imageDims),
    });
    const target = new ort.Tensor("float32", ref.rec!, built.imageDims);
    const noise = randomArray(zStar.length, 10, 0.5);
    let z = Float32Array.from(zStar, (v, i) => v + noise[i]);
    const losses: number[] = [];
    for (let step = 0; step < 6; step++) {
      const out = await session.run({
        latent: new ort.Tensor("float32", z, built.latentDims),
        target,
      });
      const l = out.loss.data as Float32Array;
      losses.push(l[0] + l[1]);
      const g = out.latent_grad.data as Float32Array;
      let norm = 0;
      for (const x of g) norm += x * x;
      const lr = 0.05 / Math.sqrt(norm / g.length);
      z = Float32Array.from(z, (v, i) => v - lr * g[i] * 0.1);
    }
    await session.release();
    for (let i = 1; i < losses.length; i++) {
      assert(
        losses[i] < losses[i - 1],
        `loss rose at step ${i}: ${losses.map((x) => x.toExponential(4))}`,
      );
    }
    assert(
      losses[5] < 0.9 * losses[0],
      `loss fell too little: ${losses.map((x) => x.toExponential(4))}`,
    );
  });
}

Deno.test("VJP graph is lean: one input-gradient conv per forward conv, no weight gradients", async () => {
  const dec = tinySdDecoder();
  const count = (ops: string[], nodes: { opType: string }[]) =>
    nodes.filter((n) => ops.includes(n.opType)).length;
  const fwdConvs = count(["Conv"], dec.nodes);
  const upsamplers = count(["Resize"], dec.nodes);
  const fwdSigmoids = count(["Sigmoid"], dec.nodes);
  const fwdNorms = count(["InstanceNormalization"], dec.nodes);
  for (const recompute of [false, true]) {
    const built = await buildLossAndGradient(dec, { batch: 1, latentShape: [4, 4, 4], recompute });
    const g = graphFromModel(decodeModel(built.bytes)).nodes;
    assert(
      count(["Conv", "ConvTranspose"], g) === 2 * fwdConvs,
      `recompute ${recompute}: expected ${
        2 * fwdConvs
      } convolutions (forward + input gradient), found ${count(["Conv", "ConvTranspose"], g)}`,
    );
    // Upsample → Conv pairs become one stride-2 ConvTranspose; everything else keeps Conv.
    assert(
      count(["ConvTranspose"], g) === upsamplers && count(["Resize"], g) === 0,
      `expected ${upsamplers} fused ConvTranspose and no Resize, found ${
        count(["ConvTranspose"], g)
      } and ${count(["Resize"], g)}`,
    );
    // Without recompute nothing runs twice; with it, each norm and sigmoid runs once more in
    // the backward pass (instead of being kept), and never more than once.
    const k = recompute ? 2 : 1;
    assert(
      count(["Sigmoid"], g) === k * fwdSigmoids,
      `recompute ${recompute}: ${count(["Sigmoid"], g)} Sigmoid for ${fwdSigmoids} in the decoder`,
    );
    assert(
      count(["InstanceNormalization"], g) === k * fwdNorms,
      `recompute ${recompute}: ${count(["InstanceNormalization"], g)} norms for ${fwdNorms}`,
    );
  }
});

Deno.test("an op without a rule fails naming the op type and the node", async () => {
  const b = new GraphBuilder();
  const z = b.input("z", DataType.FLOAT, ["n", 4, 2, 2]);
  const y = b.node(
    "Sin",
    [b.node("Resize", [z, "", b.constant(DataType.FLOAT, [4], [1, 1, 2, 2])], {
      mode: "nearest",
    })],
    {},
    { name: "wavy" },
  );
  b.output(y, DataType.FLOAT, ["n", 4, 4, 4]);
  await assertRejects(
    () => buildLossAndGradient(b.toBytes(), { batch: 1, latentShape: [4, 2, 2] }),
    UnsupportedOpError,
    `"Sin"`,
    `"wavy"`,
  );
  const c = new GraphBuilder();
  const x = c.input("z", DataType.FLOAT, [1, 4, 2, 2]);
  c.output(c.node("Einsum", [x], { equation: "ij->ij" }, { name: "mystery" }), DataType.FLOAT, [
    1,
    4,
    2,
    2,
  ]);
  await assertRejects(
    () => buildLossAndGradient(c.toBytes(), { batch: 1, latentShape: [4, 2, 2] }),
    UnsupportedOpError,
    `"Einsum"`,
    `"mystery"`,
  );
});

Deno.test("a latent size the decoder cannot take fails with expected and found shapes", async () => {
  const fixed = new GraphBuilder();
  const z = fixed.input("latent_sample", DataType.FLOAT, [1, 4, 8, 8]);
  fixed.output(fixed.node("Relu", [z]), DataType.FLOAT, [1, 4, 8, 8]);
  await assertRejects(
    () => buildLossAndGradient(fixed.toBytes(), { batch: 1, latentShape: [4, 16, 16] }),
    ShapeError,
    "expected shape [1, 4, 8, 8]",
    "found requested latent [1, 4, 16, 16]",
  );
  await assertRejects(
    () => buildLossAndGradient(encodeModel(tinySdDecoder()), { batch: 2, latentShape: [8, 4, 4] }),
    ShapeError,
    "expected shape [batch, 4, lh, lw]",
    "found requested latent [2, 8, 4, 4]",
  );
  // A reshape fixed at export time only fits one latent size.
  const r = new GraphBuilder();
  const l = r.input("latent_sample", DataType.FLOAT, ["batch", 4, "h", "w"]);
  const flat = r.node("Reshape", [l, r.int64s([1, 4, 64])], {}, { name: "fixed_reshape" });
  r.output(r.node("Reshape", [flat, r.int64s([1, 4, 8, 8])]), DataType.FLOAT, [1, 4, 8, 8]);
  await assertRejects(
    () => buildLossAndGradient(r.toBytes(), { batch: 1, latentShape: [4, 4, 4] }),
    ShapeError,
    "[1, 4, 4, 4]",
    `"fixed_reshape"`,
    "[1,4,64]",
  );
});

Deno.test("demo VAE: optimizing the encoder's latent measurably improves the reconstruction", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { encoder, decoder } = await writeDemoVae(dir);
    // A picture with edges and smooth shading, which 8× average pooling blurs.
    const size = 64;
    const img = new Float32Array(3 * size * size);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const inside = (x - 30) ** 2 + (y - 34) ** 2 < 300;
        const i = y * size + x;
        img[i] = inside ? 0.8 : -0.5 + x / size;
        img[size * size + i] = inside ? -0.2 : 0.3 * Math.sin(y / 5);
        img[2 * size * size + i] = ((x >> 3) + (y >> 3)) % 2 ? 0.6 : -0.6;
      }
    }
    const { session: enc } = await openSession(encoder, { providers: ["cpu"], intraOpThreads: 1 });
    const z0 = (await enc.run({ sample: new ort.Tensor("float32", img, [1, 3, size, size]) }))
      .latent_sample;
    await enc.release();
    const built = await buildLossAndGradient(decoder, { batch: 1, latentShape: [4, 8, 8] });
    const { session } = await openSession(built.bytes, { providers: ["cpu"], intraOpThreads: 1 });
    const target = new ort.Tensor("float32", img, built.imageDims);
    let z = Float32Array.from(z0.data as Float32Array);
    const psnr = (mse: number) => 10 * Math.log10(4 / mse);
    const first = await session.run({
      latent: new ort.Tensor("float32", z, built.latentDims),
      target,
    });
    const before = psnr((first.loss.data as Float32Array)[0]);
    let last = before;
    for (let step = 0; step < 30; step++) {
      const out = await session.run({
        latent: new ort.Tensor("float32", z, built.latentDims),
        target,
      });
      last = psnr((out.loss.data as Float32Array)[0]);
      const g = out.latent_grad.data as Float32Array;
      z = Float32Array.from(z, (v, i) => v - 20 * g[i]);
    }
    await session.release();
    assert(before > 12, `demo VAE reconstruction is unrecognizable: ${before.toFixed(2)} dB`);
    assert(last > before + 0.5, `PSNR ${before.toFixed(2)} dB → ${last.toFixed(2)} dB`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fusing upsample → conv changes neither the loss nor the gradient", async () => {
  const dec = tinySdDecoder();
  const opts = { batch: 2, latentShape: [4, 3, 4], loss: "l2" as const, withReconstruction: true };
  const fused = await buildLossAndGradient(dec, opts);
  const plain = await buildLossAndGradient(dec, { ...opts, fuseUpsampleConv: false });
  const count = (bytes: Uint8Array, op: string) =>
    graphFromModel(decodeModel(bytes)).nodes.filter((n) => n.opType === op).length;
  assert(
    count(fused.bytes, "Resize") === 0 && count(plain.bytes, "Resize") === 3,
    "fusion not applied",
  );
  const z = randomArray(sizeOf(fused.latentDims), 12);
  const t = randomArray(sizeOf(fused.imageDims), 13);
  const feeds = {
    latent: new ort.Tensor("float32", z, fused.latentDims),
    target: new ort.Tensor("float32", t, fused.imageDims),
  };
  const a = await evalLoss(fused.bytes, feeds);
  const b = await evalLoss(plain.bytes, feeds);
  const rel = (x: Float32Array, y: Float32Array) => {
    let num = 0, den = 0;
    for (let i = 0; i < x.length; i++) {
      num = Math.max(num, Math.abs(x[i] - y[i]));
      den = Math.max(den, Math.abs(y[i]));
    }
    return num / den;
  };
  assert(rel(a.rec!, b.rec!) < 1e-5, `reconstructions differ by ${rel(a.rec!, b.rec!)}`);
  assert(rel(a.loss, b.loss) < 1e-5, `losses differ by ${rel(a.loss, b.loss)}`);
  assert(rel(a.grad, b.grad) < 1e-4, `gradients differ by ${rel(a.grad, b.grad)}`);
});

// The memory estimate: what it counts on small graphs, the execution order it assumes (checked
// against ONNX Runtime's own), its figure against a measured peak RSS, and the batch it lets
// the optimize task run.
import * as ort from "onnxruntime-node";
import { fitBatchToMemory, neededBytes } from "../lib/onnx/batch_fit.ts";
import { encodeNpy } from "../lib/format/npy.ts";
import { seededRandom } from "../lib/base/random.ts";
import { graphFromModel } from "../lib/onnx/graph.ts";
import { GraphBuilder } from "../lib/onnx/graph_builder.ts";
import { buildLossAndGradient, estimateLossAndGradient } from "../lib/onnx/loss_gradient.ts";
import {
  estimateMemory,
  onnxRuntimeOrder,
  RUNTIME_ALLOWANCE,
} from "../lib/onnx/memory_estimate.ts";
import { decodeModel } from "../lib/onnx/model_io.ts";
import { inferShapes } from "../lib/onnx/shape_inference.ts";
import { DataType, sizeOf } from "../lib/onnx/tensor.ts";
import { TorchChild } from "../bench/torch_child.ts";
import { requirement, testIf } from "./fixtures/skip.ts";
import { tinySdDecoder, writeSdDecoder } from "./fixtures/vae.ts";

const F = DataType.FLOAT;

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

Deno.test("estimate: views share their input, activations write over theirs, Mul allocates", () => {
  const b = new GraphBuilder();
  const x = b.input("x", F, [4, 256]);
  const e = b.node("Exp", [x]); // 4 KiB
  const v = b.node("Reshape", [e, b.int64s([1024])]); // a view of e
  const s = b.node("Sigmoid", [v]); // over e's buffer: e dies here
  const m = b.node("Mul", [s, b.scalar(2)]); // a new 4 KiB buffer
  b.output(b.node("ReduceSum", [m], { keepdims: 0 }), F, []);
  const est = estimateMemory(b.graph, inferShapes(b.graph, { x: [4, 256] }));
  assert(est.modelledBytes === 8192, `modelled ${est.modelledBytes} B, expected 8192`);
  assert(est.peakBytes === 8192 * RUNTIME_ALLOWANCE, `peak ${est.peakBytes} B`);
  assert(est.inputBytes === 4096, `inputs ${est.inputBytes} B, expected 4096`);
  assert(est.weightBytes > 0 && est.weightBytes < 64, `weights ${est.weightBytes} B`);
  assert(est.peakNode.startsWith("Mul"), `peak at ${est.peakNode}, expected the Mul`);
});

Deno.test("estimate: ConvTranspose holds its column buffer while it runs", () => {
  const b = new GraphBuilder();
  const x = b.input("x", F, [1, 8, 16, 16]);
  const w = b.constant(F, [8, 4, 4, 4], new Array(8 * 4 * 16).fill(0.1));
  const y = b.node("ConvTranspose", [x, w], { strides: [2, 2], pads: [1, 1, 1, 1] });
  b.output(b.node("ReduceSum", [y], { keepdims: 0 }), F, []);
  const est = estimateMemory(b.graph, inferShapes(b.graph, { x: [1, 8, 16, 16] }));
  const out = 4 * 32 * 32 * 4, column = 4 * 16 * 16 * 16 * 4;
  assert(
    est.modelledBytes === out + column,
    `modelled ${est.modelledBytes} B, expected output ${out} + column buffer ${column}`,
  );
});

Deno.test("estimate: the execution order is ONNX Runtime's own", async () => {
  // Depth-first from the last node, latest-listed input first: Exp, Tanh, Sigmoid, Add — not
  // the listed Exp, Sigmoid, Tanh, Add.
  const b = new GraphBuilder();
  const x = b.input("x", F, [8]);
  const a = b.node("Exp", [x]);
  const s = b.node("Sigmoid", [x]);
  const t = b.node("Tanh", [a]);
  b.output(b.node("Add", [t, s]), F, [8]);
  const order = onnxRuntimeOrder(b.graph).map((n) => n.opType);
  assert(order.join() === "Exp,Tanh,Sigmoid,Add", `order ${order}`);
  // On a whole loss-and-gradient graph, against the order ONNX Runtime's profiler records.
  const built = await buildLossAndGradient(tinySdDecoder(), { batch: 1, latentShape: [4, 4, 4] });
  const dir = await Deno.makeTempDir({ prefix: "latentforge-order-" });
  try {
    const session = await ort.InferenceSession.create(built.bytes, {
      graphOptimizationLevel: "disabled",
      enableProfiling: true,
      profileFilePrefix: `${dir}/profile`,
      intraOpNumThreads: 1,
    });
    await session.run({
      latent: new ort.Tensor(
        "float32",
        new Float32Array(sizeOf(built.latentDims)),
        built.latentDims,
      ),
      target: new ort.Tensor("float32", new Float32Array(sizeOf(built.imageDims)), built.imageDims),
    });
    session.endProfiling();
    await session.release();
    const [file] = [...Deno.readDirSync(dir)].map((e) => `${dir}/${e.name}`);
    const events = JSON.parse(await Deno.readTextFile(file)) as { cat: string; name: string }[];
    const theirs = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time"))
      .map((e) => e.name.slice(0, -"_kernel_time".length));
    const ours = onnxRuntimeOrder(graphFromModel(decodeModel(built.bytes))).map((n) => n.name);
    const first = ours.findIndex((name, i) => theirs[i] !== name);
    assert(
      theirs.length === ours.length && first < 0,
      `orders differ at node ${first}: ONNX Runtime runs ${theirs[first]}, estimate assumes ${
        ours[first]
      }`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Measured against the estimate on an SD-shaped decoder with large activations (16 channels at
 * 256², batch 8: 32 MiB per tensor at full size), in a child process measuring its own peak RSS
 * above its baseline (as bench/grad.ts does): within [0.8, 1.3]× the estimate.
 */
const MEASURED_OVER_ESTIMATE = [0.8, 1.3];

const linux = requirement(
  "platform",
  Deno.build.os === "linux",
  "peak RSS is measured through Linux's /proc",
);

testIf(linux, {
  name: "estimate: a decoder's measured peak RSS is within the stated tolerance",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-estimate-" });
    try {
      const sd = await writeSdDecoder(dir, { channels: [16, 16, 16, 16], layersPerBlock: 1 });
      const latentDims = [8, 4, 32, 32], imageDims = [8, 3, 256, 256];
      const rand = seededRandom(17);
      for (const [name, dims] of [["latent", latentDims], ["target", imageDims]] as const) {
        const data = Float32Array.from({ length: sizeOf(dims) }, () => rand() * 2 - 1);
        await Deno.writeFile(`${dir}/${name}.npy`, encodeNpy({ dtype: "<f4", shape: dims, data }));
      }
      const est = await estimateLossAndGradient(sd.model, {
        batch: 8,
        latentShape: latentDims.slice(1),
      });
      const child = new TorchChild(
        new URL("./fixtures/grad_child.ts", import.meta.url).pathname,
        [sd.model, `${dir}/latent.npy`, `${dir}/target.npy`, `${dir}/grad.npy`, "2"],
        [Deno.execPath(), "run", "-A", "--v8-flags=--expose-gc"],
      );
      await child.line();
      await child.send("run"); // warm-up
      const run = await child.send("run");
      await child.close("quit");
      const measured = run.peak_mb as number, estimated = est.peakBytes / 2 ** 20;
      const ratio = measured / estimated;
      console.log(
        `peak RSS above baseline: measured ${measured.toFixed(1)} MiB, estimated ${
          estimated.toFixed(1)
        } MiB (ratio ${ratio.toFixed(2)})`,
      );
      assert(
        ratio >= MEASURED_OVER_ESTIMATE[0] && ratio <= MEASURED_OVER_ESTIMATE[1],
        `measured ${measured.toFixed(1)} MiB is ${ratio.toFixed(2)}× the estimate ${
          estimated.toFixed(1)
        } MiB, expected ${MEASURED_OVER_ESTIMATE.join("–")}×`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("batch fit: a batch that does not fit is lowered with one line; one that fits is kept", async () => {
  const dec = tinySdDecoder();
  const opts = { batch: 8, latentShape: [4, 8, 8] };
  const need = async (batch: number) =>
    neededBytes(await estimateLossAndGradient(dec, { ...opts, batch }));
  const need8 = await need(8), need3 = await need(3), need4 = await need(4);
  const lines: string[] = [];
  const log = (line: string) => lines.push(line);
  const said = () => lines.length;
  // Room for 3 images, not 4, once the 0.9 share is taken.
  const available = (need3 + (need4 - need3) / 2) / 0.9;
  const fit = await fitBatchToMemory(dec, opts, { availableBytes: available, log });
  assert(fit.batch === 3, `batch ${fit.batch}, expected 3 (needs: 3 → ${need3}, 4 → ${need4})`);
  assert(said() === 1, `${said()} log lines: ${lines.join(" | ")}`);
  assert(
    lines[0].includes("a batch of 8 needs about") && lines[0].includes("batches of 3"),
    `log line: ${lines[0]}`,
  );
  const kept = await fitBatchToMemory(dec, opts, { availableBytes: need8 / 0.8, log });
  assert(kept.batch === 8 && said() === 1, `batch ${kept.batch}, lines ${said()}`);
  // Not even one image fits: said once, and the run goes ahead with one.
  const tiny = await fitBatchToMemory(dec, opts, { availableBytes: 1024, log });
  assert(tiny.batch === 1 && said() === 2, `batch ${tiny.batch}, lines ${said()}`);
  assert(lines[1].includes("one image needs about"), `log line: ${lines[1]}`);
  // A provider list without the CPU runs on a device: nothing is estimated or said.
  const device = await fitBatchToMemory(dec, opts, {
    availableBytes: 1024,
    providers: ["cuda"],
    log,
  });
  assert(device.batch === 8 && said() === 2, `batch ${device.batch}, lines ${said()}`);
});

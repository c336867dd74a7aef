/**
 * Loss + latent-gradient evaluation of an SD-v1-shaped decoder (latent 4×32×32 → 3×256×256):
 * latentforge's derived ONNX graph on ONNX Runtime (CPU) side by side with PyTorch eager
 * autograd (bench/grad_torch.py) on the same weights, inputs and thread count. The two are
 * timed alternately, step by step, so that both see the same machine load; the minimum per
 * side is reported with the ratio, the cosine similarity of the gradients and peak RSS.
 *
 * usage: deno run -A bench/grad.ts [--threads N] [--repeats R] [--batches 1,4] [--small]
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { decodeNpy, encodeNpy } from "../lib/format/npy.ts";
import { seededRandom } from "../lib/onnx/gradient_check.ts";
import { buildLossAndGradient } from "../lib/onnx/loss_gradient.ts";
import { openSession } from "../lib/onnx/session.ts";
import { sizeOf } from "../lib/onnx/tensor.ts";
import { writeSdDecoder } from "../tests/fixtures/vae.ts";
import { TorchChild, torchVersion as findTorch } from "./torch_child.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1] : fallback;
}

const threads = Number(flag("threads", String(navigator.hardwareConcurrency)));
const repeats = Number(flag("repeats", "2"));
const batches = flag("batches", "1,4").split(",").map(Number);
const small = Deno.args.includes("--small");
const latentSize = small ? 8 : 32;
const TORCH_SCRIPT = new URL("./grad_torch.py", import.meta.url).pathname;

function peakRssMb(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

const torchVersion = await findTorch();
const dir = await Deno.makeTempDir({ prefix: "latentforge-bench-grad-" });
try {
  const started = performance.now();
  const sd = await writeSdDecoder(
    dir,
    small ? { channels: [64, 64, 32, 32], layersPerBlock: 1 } : {},
  );
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  console.log(
    `SD-v1-shaped decoder${small ? " (reduced)" : ""}: latent 4×${latentSize}×${latentSize} → 3×${
      8 * latentSize
    }×${8 * latentSize}, ${sd.weights.length} weight tensors, written in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s; ${threads} threads; onnxruntime-node ${ort.env.versions.common}${
      torchVersion ? `, torch ${torchVersion}` : ""
    }; load average ${load}`,
  );
  for (const batch of batches) {
    const t0 = performance.now();
    const built = await buildLossAndGradient(sd.model, {
      batch,
      latentShape: [4, latentSize, latentSize],
      loss: "l2",
    });
    const buildSeconds = (performance.now() - t0) / 1000;
    const { session } = await openSession(built.bytes, {
      providers: ["cpu"],
      intraOpThreads: threads,
      graphOptimizationLevel: "all",
    });
    const rand = seededRandom(batch);
    const z = Float32Array.from({ length: sizeOf(built.latentDims) }, () => rand() * 2 - 1);
    const target = Float32Array.from({ length: sizeOf(built.imageDims) }, () => rand() * 2 - 1);
    const feeds = {
      latent: new ort.Tensor("float32", z, built.latentDims),
      target: new ort.Tensor("float32", target, built.imageDims),
    };
    let torch: TorchChild | undefined;
    if (torchVersion) {
      const latentPath = `${dir}/latent_${batch}.npy`;
      const targetPath = `${dir}/target_${batch}.npy`;
      await Deno.writeFile(
        latentPath,
        encodeNpy({ dtype: "<f4", shape: built.latentDims, data: z }),
      );
      await Deno.writeFile(
        targetPath,
        encodeNpy({ dtype: "<f4", shape: built.imageDims, data: target }),
      );
      torch = new TorchChild(TORCH_SCRIPT, [
        sd.weightsDir,
        latentPath,
        targetPath,
        `${dir}/torch_grad_${batch}.npy`,
        String(threads),
      ]);
      await torch.line();
    }
    const ortTimes: number[] = [];
    const torchTimes: number[] = [];
    let grad: Float32Array<ArrayBufferLike> = new Float32Array();
    let loss: Float32Array<ArrayBufferLike> = new Float32Array();
    let torchLoss: number[] = [];
    // Run 0 warms both up (allocations, kernel selection) and is not counted.
    for (let r = 0; r <= repeats; r++) {
      const s = performance.now();
      const out = await session.run(feeds);
      if (r > 0) ortTimes.push((performance.now() - s) / 1000);
      grad = out.latent_grad.data as Float32Array;
      loss = out.loss.data as Float32Array;
      if (torch) {
        const res = await torch.send("run");
        if (r > 0) torchTimes.push(res.seconds as number);
        torchLoss = res.loss as number[];
      }
    }
    await session.release();
    const ortSeconds = Math.min(...ortTimes);
    let line = `batch ${batch}: latentforge/ORT ${ortSeconds.toFixed(2)} s per step ` +
      `(runs ${ortTimes.map((t) => t.toFixed(2)).join(", ")}; graph built in ${
        buildSeconds.toFixed(1)
      } s), peak RSS of this process so far ${peakRssMb().toFixed(0)} MB`;
    if (torch) {
      const saved = await torch.send("save");
      await torch.close("quit");
      const torchSeconds = Math.min(...torchTimes);
      const tg = decodeNpy(await Deno.readFile(saved.saved as string)).data as Float32Array;
      let dot = 0, na = 0, nb = 0;
      for (let i = 0; i < grad.length; i++) {
        dot += grad[i] * tg[i];
        na += grad[i] * grad[i];
        nb += tg[i] * tg[i];
      }
      const cosine = dot / Math.sqrt(na * nb);
      const lossDiff = Math.max(...torchLoss.map((l, i) => Math.abs(l - loss[i]) / Math.abs(l)));
      line +=
        `\n         PyTorch eager ${torchSeconds.toFixed(2)} s per step (runs ${
          torchTimes.map((t) => t.toFixed(2)).join(", ")
        }), peak RSS ${(saved.peak_rss_mb as number).toFixed(0)} MB` +
        `\n         step time ratio ORT/PyTorch ${
          (ortSeconds / torchSeconds).toFixed(3)
        } (target ≤ 0.8), ` +
        `gradient cosine similarity ${cosine.toFixed(6)} (target ≥ 0.9999), ` +
        `max relative loss difference ${lossDiff.toExponential(2)}`;
    }
    console.log(line);
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

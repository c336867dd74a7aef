/**
 * Loss + latent-gradient evaluation of an SD-v1-shaped decoder (latent 4×h×w → 3×8h×8w):
 * latentforge's derived ONNX graph on ONNX Runtime (CPU) side by side with PyTorch eager
 * autograd (bench/grad_torch.py) on the same weights, inputs and thread count, at 256² (batch 1
 * and 4) and 512² (batch 1) by default.
 *
 * Each side runs in its own child process per configuration, and both are measured the same
 * way: peak RSS of a run above the RSS the process had once the model and inputs were loaded
 * (VmHWM, reset before every run), and the run's wall time. After one warm-up run each, the two
 * are run alternately, so that both see the same machine load; medians over the repeats are
 * reported with their ratios, the cosine similarity of the gradients, and latentforge's estimate
 * of the peak (lib/onnx/memory_estimate.ts) beside the measured one.
 *
 * usage: deno task bench grad [--threads N] [--repeats R] [--configs 256:1,256:4,512:1]
 *        [--small] [--no-recompute] [--memory-pattern] [--ort-only]
 *
 * --no-recompute and --memory-pattern run latentforge's side as it ran before its gradient graph
 * recomputed cheap values and opened without ONNX Runtime's memory pattern.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { decodeNpy, encodeNpy } from "../lib/format/npy.ts";
import { seededRandom } from "../lib/base/random.ts";
import { estimateLossAndGradient } from "../lib/onnx/loss_gradient.ts";
import { sizeOf } from "../lib/onnx/tensor.ts";
import { writeSdDecoder } from "../tests/fixtures/vae.ts";
import { TorchChild, torchVersion as findTorch } from "./torch_child.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1] : fallback;
}

const threads = Number(flag("threads", String(navigator.hardwareConcurrency)));
const repeats = Number(flag("repeats", "3"));
const small = Deno.args.includes("--small");
const recompute = !Deno.args.includes("--no-recompute");
const memoryPattern = Deno.args.includes("--memory-pattern");
const ortOnly = Deno.args.includes("--ort-only");
const configs = flag("configs", small ? "64:1,64:2" : "256:1,256:4,512:1").split(",").map((c) => {
  const [size, batch] = c.split(":").map(Number);
  if (!(size > 0 && size % 8 === 0 && batch > 0)) {
    throw new Error(`--configs: expected SIZE:BATCH with SIZE a multiple of 8, found "${c}"`);
  }
  return { size, batch };
});
const TORCH_SCRIPT = new URL("./grad_torch.py", import.meta.url).pathname;
const ORT_SCRIPT = new URL("../tests/fixtures/grad_child.ts", import.meta.url).pathname;

const loadAverage = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const list = (xs: number[], digits: number) => xs.map((x) => x.toFixed(digits)).join(", ");

interface Side {
  child: TorchChild;
  seconds: number[];
  peaks: number[];
  loss: number[];
}

async function start(script: string, args: string[], runner?: string[]): Promise<Side> {
  const child = new TorchChild(script, args, runner);
  const ready = await child.line();
  if (!ready.ready) throw new Error(`${script}: ${JSON.stringify(ready)}`);
  return { child, seconds: [], peaks: [], loss: [] };
}

async function run(side: Side, counted: boolean): Promise<void> {
  const r = await side.child.send("run");
  if (counted) {
    side.seconds.push(r.seconds as number);
    side.peaks.push(r.peak_mb as number);
  }
  side.loss = r.loss as number[];
}

const torchVersion = await findTorch();
const dir = await Deno.makeTempDir({ prefix: "latentforge-bench-grad-" });
try {
  const started = performance.now();
  const sd = await writeSdDecoder(
    dir,
    small ? { channels: [64, 64, 32, 32], layersPerBlock: 1 } : {},
  );
  console.log(
    `SD-v1-shaped decoder${small ? " (reduced)" : ""}, ${sd.weights.length} weight tensors, ` +
      `written in ${((performance.now() - started) / 1000).toFixed(1)} s; ${threads} threads; ` +
      `onnxruntime-node ${ort.env.versions.common}${
        torchVersion ? `, torch ${torchVersion}` : ""
      }; ${recompute ? "" : "no recomputation; "}${memoryPattern ? "memory pattern; " : ""}` +
      `${repeats} repeats after a warm-up run; load average ${loadAverage()}`,
  );
  for (const { size, batch } of configs) {
    const latentDims = [batch, 4, size / 8, size / 8];
    const imageDims = [batch, 3, size, size];
    const rand = seededRandom(batch * 1000 + size);
    const z = Float32Array.from({ length: sizeOf(latentDims) }, () => rand() * 2 - 1);
    const t = Float32Array.from({ length: sizeOf(imageDims) }, () => rand() * 2 - 1);
    const latentPath = `${dir}/latent.npy`, targetPath = `${dir}/target.npy`;
    await Deno.writeFile(latentPath, encodeNpy({ dtype: "<f4", shape: latentDims, data: z }));
    await Deno.writeFile(targetPath, encodeNpy({ dtype: "<f4", shape: imageDims, data: t }));
    const estimate = await estimateLossAndGradient(sd.model, {
      batch,
      latentShape: latentDims.slice(1),
      recompute,
    });
    const ortSide = await start(
      ORT_SCRIPT,
      [sd.model, latentPath, targetPath, `${dir}/ort_grad.npy`, String(threads)].concat(
        recompute ? [] : ["--no-recompute"],
        memoryPattern ? ["--memory-pattern"] : [],
      ),
      [Deno.execPath(), "run", "-A", "--v8-flags=--expose-gc"],
    );
    const torchSide = torchVersion && !ortOnly
      ? await start(TORCH_SCRIPT, [
        sd.weightsDir,
        latentPath,
        targetPath,
        `${dir}/torch_grad.npy`,
        String(threads),
      ])
      : undefined;
    // Run 0 warms both up (allocations, kernel selection) and is not counted.
    for (let r = 0; r <= repeats; r++) {
      await run(ortSide, r > 0);
      if (torchSide) await run(torchSide, r > 0);
    }
    const ortGrad = decodeNpy(
      await Deno.readFile((await ortSide.child.send("save")).saved as string),
    ).data as Float32Array;
    await ortSide.child.close("quit");
    const ortSeconds = median(ortSide.seconds), ortPeak = median(ortSide.peaks);
    const mb = (b: number) => b / 2 ** 20;
    let line = `${size}² batch ${batch}: latentforge/ORT ${ortSeconds.toFixed(2)} s per step ` +
      `(runs ${list(ortSide.seconds, 2)}), peak ${ortPeak.toFixed(0)} MB above baseline ` +
      `(runs ${list(ortSide.peaks, 0)}; estimated ${mb(estimate.peakBytes).toFixed(0)} MB, ` +
      `weights ${mb(estimate.weightBytes).toFixed(0)} MB)`;
    if (torchSide) {
      const torchGrad = decodeNpy(
        await Deno.readFile((await torchSide.child.send("save")).saved as string),
      ).data as Float32Array;
      await torchSide.child.close("quit");
      const torchSeconds = median(torchSide.seconds), torchPeak = median(torchSide.peaks);
      let dot = 0, na = 0, nb = 0;
      for (let i = 0; i < ortGrad.length; i++) {
        dot += ortGrad[i] * torchGrad[i];
        na += ortGrad[i] * ortGrad[i];
        nb += torchGrad[i] * torchGrad[i];
      }
      const cosine = dot / Math.sqrt(na * nb);
      const lossDiff = Math.max(
        ...torchSide.loss.map((l, i) => Math.abs(l - ortSide.loss[i]) / Math.abs(l)),
      );
      line +=
        `\n    PyTorch eager ${torchSeconds.toFixed(2)} s per step (runs ${
          list(torchSide.seconds, 2)
        }), peak ${torchPeak.toFixed(0)} MB above baseline (runs ${list(torchSide.peaks, 0)})` +
        `\n    ratios ORT/PyTorch: time ${
          (ortSeconds / torchSeconds).toFixed(3)
        } (target ≤ 0.8), ` +
        `peak memory ${(ortPeak / torchPeak).toFixed(3)} (target ≤ 1.0); ` +
        `gradient cosine similarity ${cosine.toFixed(6)}, max relative loss difference ${
          lossDiff.toExponential(2)
        }; load average ${loadAverage()}`;
    }
    console.log(line);
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

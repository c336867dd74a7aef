/**
 * The optimize stage on CPU, two parts.
 *
 * 1. Speed: time per Adam update of the gradient method with the SD-v1-shaped decoder of
 *    bench/grad.ts (random weights) at 128×128 (latent 4×16×16) by default, batch 1:
 *    latentforge's loop (`optimizeLatents` driving `gradientEvaluator`, the derived
 *    loss-and-gradient graph on ONNX Runtime) side by side with a PyTorch eager loop of the same
 *    algorithm (bench/optimize_torch.py: Adam lr 0.1, β 0.9/0.999, ε 1e-8, L2 loss per image on
 *    the unclamped output, best latent kept) on the same weights, inputs and thread count. Both
 *    sides do the same passes: every evaluation is one forward and one backward pass, followed by
 *    an Adam step (the last evaluation, of the final latent, by none). An update's time runs
 *    from the start of one evaluation to the start of the next, so it includes the Adam step and
 *    the loop's bookkeeping on both sides. Each repeat is a fresh loop of `--warmup` updates
 *    (not timed) and `--updates` timed ones; the sides alternate repeat by repeat so that both
 *    see the same machine load; the figure is the median over all timed updates of the
 *    repeats, and the ratio is ORT's over PyTorch's.
 * 2. Quality: PSNR gained over the encoder's latent after 25, 50 and 100 updates on the BSDS500
 *    images of ../shared/data/bsds500 with the trained VAE of ../shared/models/vae-small-bsds
 *    (skipped when either is absent: random weights would make the figure meaningless).
 *
 * usage: deno run -A bench/optimize.ts [--threads 2] [--size 128] [--batches 1]
 *          [--warmup 2] [--updates 20] [--repeats 3] [--skip-torch] [--skip-speed] [--small]
 *          [--skip-psnr] [--images 40] [--psnr-steps 100] [--psnr-size 256] [--psnr-batch 4]
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { encodeNpy } from "../lib/format/npy.ts";
import { preprocessImage } from "../lib/image/preprocess.ts";
import { gradientEvaluator } from "../lib/model/evaluators.ts";
import { encodeImages, openVae } from "../lib/model/vae.ts";
import { LatentNormalization } from "../lib/model/normalization.ts";
import { seededRandom } from "../lib/base/random.ts";
import { pathExists } from "./absent.ts";
import type {
  OptimizeJob,
  OptimizeResult,
  OptimizerSettings,
} from "../lib/optim/latent_optimizer.ts";
import { runOptimizeLoop } from "./optimize_loop.ts";
import { writeSdDecoder } from "../tests/fixtures/vae.ts";
import { median } from "./timing.ts";
import { TorchChild, torchVersion as findTorch } from "./torch_child.ts";

/** Raised when the benchmark cannot go on; the message says what was expected and found. */
class OptimizeBenchError extends Error {
  override readonly name = "OptimizeBenchError";
}

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1] : fallback;
}

function positiveInt(name: string, fallback: string): number {
  const value = Number(flag(name, fallback));
  if (!Number.isInteger(value) || value < 1) {
    throw new OptimizeBenchError(`--${name}: expected a positive integer, found ${flag(name, "")}`);
  }
  return value;
}

const threads = positiveInt("threads", "2");
const size = positiveInt("size", "128");
if (size % 8 !== 0) throw new OptimizeBenchError(`--size: expected a multiple of 8, found ${size}`);
const warmup = positiveInt("warmup", "2");
const updates = positiveInt("updates", "20");
if (warmup + updates > 199) {
  // The loop keeps at most 200 points of each loss curve; the comparison needs all of them.
  throw new OptimizeBenchError(
    `--warmup + --updates: expected at most 199, found ${warmup + updates}`,
  );
}
const repeats = positiveInt("repeats", "3");
const batches = flag("batches", "1").split(",").map(Number);
const small = Deno.args.includes("--small");
const skipTorch = Deno.args.includes("--skip-torch");
const skipSpeed = Deno.args.includes("--skip-speed");
const skipPsnr = Deno.args.includes("--skip-psnr");
const maxImages = positiveInt("images", "40");
const psnrSteps = positiveInt("psnr-steps", "100");
const psnrSize = positiveInt("psnr-size", "256");
const psnrBatch = positiveInt("psnr-batch", "4");
if (psnrSteps > 199) {
  // The loop keeps at most 200 points of each loss curve; every step must be among them.
  throw new OptimizeBenchError(`--psnr-steps: expected at most 199, found ${psnrSteps}`);
}
const LR = 0.1;
const TORCH_SCRIPT = new URL("./optimize_torch.py", import.meta.url).pathname;
const SHARED = new URL("../../shared/", import.meta.url).pathname;
const latentSide = size / 8;
const quiet = () => {};

function peakRssMb(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

const fmt = (x: number, digits = 2) => x.toFixed(digits);
const perHour = (secondsPerImage: number) => Math.round(3600 / secondsPerImage);

/**
 * Runs the stage's loop over `jobs` to completion and returns each image's result, in job order,
 * with the wall time and that of each batch evaluation. No checkpoints are kept (`save` does nothing).
 */
async function runLoop(
  settings: OptimizerSettings,
  evaluator: Awaited<ReturnType<typeof gradientEvaluator>>,
  jobs: OptimizeJob[],
): Promise<{ seconds: number; updateSeconds: number[]; results: OptimizeResult[] }> {
  const { seconds, starts, results } = await runOptimizeLoop(settings, evaluator, jobs);
  // From the start of one evaluation to the start of the next: evaluation, Adam step, bookkeeping.
  const updateSeconds = starts.slice(1).map((t, i) => (t - starts[i]) / 1000);
  return { seconds, updateSeconds, results };
}

function loopSettings(
  batch: number,
  latentShape: number[],
  imageShape: number[],
  maxSteps: number,
): OptimizerSettings {
  return {
    batch,
    latentSize: latentShape.reduce((a, b) => a * b, 1),
    imageShape: imageShape as [number, number, number],
    lr: LR,
    schedule: "constant",
    warmupSteps: 0,
    maxSteps,
    // Tolerance 0 never counts as converged: every image takes exactly maxSteps updates.
    patience: 1,
    tolerance: 0,
    checkpointEvery: maxSteps + 1,
    dataRange: 2,
  };
}

async function torchVersion(): Promise<string> {
  if (skipTorch) {
    console.log("PyTorch side skipped (--skip-torch); timing latentforge only.");
    return "";
  }
  return await findTorch();
}

async function speed(dir: string): Promise<void> {
  const torch = await torchVersion();
  const started = performance.now();
  const sd = await writeSdDecoder(
    dir,
    small ? { channels: [64, 64, 32, 32], layersPerBlock: 1 } : {},
  );
  const latentShape = [4, latentSide, latentSide];
  const imageShape = [3, size, size];
  const steps = warmup + updates;
  console.log(
    `\n== Speed: SD-v1-shaped decoder${small ? " (reduced channels)" : ""}, random weights, ` +
      `latent 4×${latentSide}×${latentSide} → image 3×${size}×${size} ` +
      `(written in ${fmt((performance.now() - started) / 1000, 1)} s)\n` +
      `   per repeat and side: a fresh loop of ${warmup} warm-up + ${updates} timed Adam updates ` +
      `(lr ${LR}, L2 loss, no early stopping), each update one forward and one backward pass, ` +
      `then one more of each to score the final latent (not timed); ${repeats} repeats, sides ` +
      `alternating; ${threads} threads on both sides; onnxruntime-node ${ort.env.versions.common}` +
      `${torch ? `, torch ${torch}` : ""}; graph building and weight loading not timed; ` +
      `load average ${loadAverage()}`,
  );
  const summary: string[] = [];
  for (const batch of batches) {
    if (!Number.isInteger(batch) || batch < 1) {
      throw new OptimizeBenchError(`--batches: expected positive integers, found ${batch}`);
    }
    const t0 = performance.now();
    const evaluator = await gradientEvaluator(sd.model, "decoder", {
      batch,
      latentShape: latentShape as [number, number, number],
      normalization: LatentNormalization.of(latentShape[0], { scaling_factor: 1 }),
      loss: "l2",
      charbonnierEps: 1e-3,
    }, { providers: ["cpu"], threads, log: quiet });
    const buildSeconds = (performance.now() - t0) / 1000;
    // One full batch of images; random targets in [-1, 1], random initial latents.
    const rand = seededRandom(100 + batch);
    const latentSize = latentShape[0] * latentShape[1] * latentShape[2];
    const imageSize = imageShape[0] * imageShape[1] * imageShape[2];
    const latents = Float32Array.from({ length: batch * latentSize }, () => rand() * 2 - 1);
    const targets = Float32Array.from({ length: batch * imageSize }, () => rand() * 2 - 1);
    const jobs: OptimizeJob[] = Array.from({ length: batch }, (_, i) => ({
      id: `random-${i}`,
      latent: latents.slice(i * latentSize, (i + 1) * latentSize),
      target: targets.slice(i * imageSize, (i + 1) * imageSize),
    }));
    let loop: TorchChild | undefined;
    const latentsPath = `${dir}/latents_${batch}.npy`;
    const targetsPath = `${dir}/targets_${batch}.npy`;
    if (torch) {
      await Deno.writeFile(
        latentsPath,
        encodeNpy({ dtype: "<f4", shape: [batch, ...latentShape], data: latents }),
      );
      await Deno.writeFile(
        targetsPath,
        encodeNpy({ dtype: "<f4", shape: [batch, ...imageShape], data: targets }),
      );
      loop = new TorchChild(TORCH_SCRIPT, [sd.weightsDir, String(threads)]);
      const ready = await loop.line();
      if (ready.threads !== threads) {
        throw new OptimizeBenchError(
          `PyTorch: expected ${threads} threads, found ${JSON.stringify(ready)}`,
        );
      }
    }
    const settings = loopSettings(batch, latentShape, imageShape, steps);
    // Timed (warm) updates of every repeat, and each repeat's median, per side.
    const ortTimed: number[] = [];
    const torchTimed: number[] = [];
    const ortRepeats: number[] = [];
    const torchRepeats: number[] = [];
    let ortLosses: number[][] = [];
    let torchLosses: number[][] = [];
    for (let r = 0; r < repeats; r++) {
      const { updateSeconds, results } = await runLoop(settings, evaluator, jobs);
      if (updateSeconds.length !== steps) {
        throw new OptimizeBenchError(
          `latentforge's loop: expected ${steps + 1} evaluations, found ${
            updateSeconds.length + 1
          }`,
        );
      }
      ortTimed.push(...updateSeconds.slice(warmup));
      ortRepeats.push(median(updateSeconds.slice(warmup)));
      ortLosses = results.map((res) => res.curve.losses);
      if (loop) {
        const answer = await loop.send(JSON.stringify({
          cmd: "optimize",
          latents: latentsPath,
          targets: targetsPath,
          batch,
          steps,
          lr: LR,
        }));
        const times = (answer.update_seconds as number[][])[0];
        if (times.length !== steps) {
          throw new OptimizeBenchError(
            `PyTorch's loop: expected ${steps} updates, found ${times.length}`,
          );
        }
        torchTimed.push(...times.slice(warmup));
        torchRepeats.push(median(times.slice(warmup)));
        torchLosses = answer.losses as number[][];
      }
    }
    const ortUpdate = median(ortTimed);
    const line = (name: string, timed: number[], perRepeat: number[]) =>
      `   ${name.padEnd(16)} ${fmt(median(timed), 3)} s per update of the batch ` +
      `(${fmt(median(timed) / batch, 3)} s per image-update; repeat medians ${
        perRepeat.map((t) => fmt(t, 3)).join(", ")
      } s; fastest ${fmt(Math.min(...timed), 3)} s, slowest ${fmt(Math.max(...timed), 3)} s)`;
    let text = `batch ${batch}: ${repeats} × ${updates} timed updates per side\n` +
      line("latentforge/ORT", ortTimed, ortRepeats) +
      `; graph built in ${fmt(buildSeconds, 1)} s; peak RSS of this process so far ${
        fmt(peakRssMb(), 0)
      } MB`;
    if (loop) {
      const rss = await loop.send(JSON.stringify({ cmd: "rss" }));
      await loop.close(JSON.stringify({ cmd: "quit" }));
      const torchUpdate = median(torchTimed);
      // Same algorithm, same inputs: the loss curves must agree to float32 accuracy.
      let lossDiff = 0;
      for (let i = 0; i < batch; i++) {
        for (let k = 0; k <= steps; k++) {
          const a = ortLosses[i][k], b = torchLosses[i][k];
          lossDiff = Math.max(lossDiff, Math.abs(a - b) / Math.abs(b));
        }
      }
      const ratio = ortUpdate / torchUpdate;
      text += `\n` + line("PyTorch eager", torchTimed, torchRepeats) +
        `; peak RSS ${fmt(rss.peak_rss_mb as number, 0)} MB` +
        `\n   time per update ORT/PyTorch ${fmt(ratio, 3)} (target ≤ 0.8: ${
          ratio <= 0.8 ? "met" : "NOT met"
        }); max relative difference of the loss curves ${lossDiff.toExponential(2)}`;
      summary.push(
        `batch ${batch}: ${fmt(ortUpdate / batch, 3)} vs ${fmt(torchUpdate / batch, 3)} ` +
          `s per image-update, ratio ${fmt(ratio, 3)}`,
      );
    } else {
      summary.push(`batch ${batch}: ${fmt(ortUpdate / batch, 3)} s per image-update (ORT only)`);
    }
    console.log(text);
  }
  console.log(
    `summary (${size}×${size}, median of ${repeats} × ${updates} warm updates per side): ` +
      `${summary.join("; ")}; load average ${loadAverage()}`,
  );
}

/** The validation images first (those the VAE's own figures use), then the training ones. */
async function listImages(): Promise<string[]> {
  const files: string[] = [];
  for (const split of ["val", "train"]) {
    const names: string[] = [];
    for await (const e of Deno.readDir(`${SHARED}data/bsds500/${split}`)) {
      if (e.isFile && e.name.endsWith(".jpg")) {
        names.push(`${SHARED}data/bsds500/${split}/${e.name}`);
      }
    }
    files.push(...names.sort());
  }
  return files;
}

async function quality(): Promise<void> {
  const modelDir = `${SHARED}models/vae-small-bsds`;
  const needed = [
    `${modelDir}/vae_encoder.onnx`,
    `${modelDir}/vae_decoder.onnx`,
    `${SHARED}data/bsds500/train`,
    `${SHARED}data/bsds500/val`,
  ];
  const missing = [];
  for (const path of needed) if (!(await pathExists(path))) missing.push(path);
  if (missing.length) {
    console.log(
      `\n== Quality skipped: ${missing.join(", ")} absent (the trained VAE and the BSDS500 ` +
        "images are needed; with random weights the PSNR gain would mean nothing).",
    );
    return;
  }
  const files = (await listImages()).slice(0, maxImages);
  if (files.length === 0) {
    throw new OptimizeBenchError(`${SHARED}data/bsds500: expected .jpg images, found none`);
  }
  const started = performance.now();
  const runtime = { providers: ["cpu"], threads, log: quiet };
  const vae = await openVae({
    encoder: { path: `${modelDir}/vae_encoder.onnx`, label: "encoder" },
    decoder: { path: `${modelDir}/vae_decoder.onnx`, label: "decoder" },
    model: { scaling_factor: 1, input_range: [-1, 1] },
    size: psnrSize,
    runtime,
  });
  const jobs: OptimizeJob[] = [];
  let latentDims: number[] = [];
  for (const file of files) {
    const image = await preprocessImage(file, { size: psnrSize, crop: "center", preview: false });
    const { latents, dims } = await encodeImages(vae, image.tensor, image.shape);
    latentDims = dims;
    jobs.push({ id: file.slice(SHARED.length), latent: latents, target: image.tensor });
  }
  const prepared = (performance.now() - started) / 1000;
  const latentShape = latentDims.slice(1);
  const imageShape = [3, psnrSize, psnrSize];
  const evaluator = await gradientEvaluator(`${modelDir}/vae_decoder.onnx`, "decoder", {
    batch: psnrBatch,
    latentShape: latentShape as [number, number, number],
    normalization: vae.normalization,
    loss: "l2",
    charbonnierEps: 1e-3,
  }, runtime);
  console.log(
    `\n== Quality: ${files.length} BSDS500 images (../shared/data/bsds500, val then train, by name), ` +
      `center crop, ${psnrSize}×${psnrSize}, trained VAE ../shared/models/vae-small-bsds ` +
      `(scaling factor 1.0); gradient method, Adam lr ${LR}, L2 loss, ${psnrSteps} updates, ` +
      `no early stopping, batch ${psnrBatch}, ${threads} threads; preprocess + encode took ` +
      `${fmt(prepared, 1)} s; load average ${loadAverage()}`,
  );
  const { seconds, results } = await runLoop(
    loopSettings(psnrBatch, latentShape, imageShape, psnrSteps),
    evaluator,
    jobs,
  );
  // PSNR with peak-to-peak 2 from the per-image mean squared error (the L2 loss).
  const db = (mse: number) => 10 * Math.log10(4 / mse);
  const initial = results.map((r) => db(r.curve.losses[0]));
  const checkDrift = Math.max(...results.map((r, i) => Math.abs(r.psnrInitial - initial[i])));
  if (checkDrift > 0.01) {
    throw new OptimizeBenchError(
      `PSNR of the encoder's latent: expected the loss and the reconstruction to agree within ` +
        `0.01 dB, found ${checkDrift} dB apart`,
    );
  }
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  console.log(
    `decoder of the encoder's latent: mean ${fmt(mean(initial))} dB, median ${
      fmt(median(initial))
    } dB PSNR`,
  );
  for (const k of [25, 50, 100].filter((k) => k <= psnrSteps)) {
    const after = results.map((r) => db(r.curve.losses[k]));
    const best = results.map((r) => db(Math.min(...r.curve.losses.slice(0, k + 1))));
    const gain = after.map((p, i) => p - initial[i]);
    const bestGain = best.map((p, i) => p - initial[i]);
    console.log(
      `after ${String(k).padStart(3)} updates: PSNR gained mean +${fmt(mean(gain))} dB, median +${
        fmt(median(gain))
      } dB, min ${fmt(Math.min(...gain))}, max ${fmt(Math.max(...gain))} ` +
        `(absolute mean ${fmt(mean(after))} dB); best latent so far: mean +${
          fmt(mean(bestGain))
        } dB, median +${fmt(median(bestGain))} dB`,
    );
  }
  const perImage = seconds / files.length;
  console.log(
    `optimize loop: ${fmt(seconds, 1)} s for ${files.length} images × ${psnrSteps} updates ` +
      `(${fmt(perImage, 2)} s per image = ${perHour(perImage)} images/hour with this small VAE); ` +
      `peak RSS of this process so far ${fmt(peakRssMb(), 0)} MB`,
  );
}

const began = performance.now();
const dir = await Deno.makeTempDir({ prefix: "latentforge-bench-optimize-" });
try {
  if (!skipSpeed) await speed(dir);
  if (!skipPsnr) await quality();
} finally {
  await Deno.remove(dir, { recursive: true });
}
console.log(`\nbenchmark took ${fmt((performance.now() - began) / 1000, 0)} s`);

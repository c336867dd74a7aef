/**
 * What to expect before starting a dataset: the time per image, and per 1,000 images, of
 * `encode` and of 100 `optimize` steps (the gradient method), for
 *
 * - the demo VAE (tests/fixtures/vae.ts, what `deno task demo` uses),
 * - the shared small VAE (../shared/models/vae-small-bsds, SD-v1 layout, channels 32/64/64/64;
 *   skipped with a message when absent),
 * - an SD-v1-sized VAE (channels 128/256/512/512, random weights: the time does not depend on
 *   them),
 *
 * at each size asked for (default 256² and 512²), on this machine's CPU through the code the
 * tasks run (`encodeImages` on the encoder session; `gradientEvaluator`, the derived
 * loss-and-gradient graph, one evaluation per step). Each configuration runs in a process of
 * its own, so its peak memory is its own. The FLOPs per image (convolutions and matrix products,
 * counted on the graphs that run) give the CPU's achieved rate and an estimate for GPUs from
 * their FP32 peak at an assumed utilisation — an estimate, not a measurement.
 *
 * usage: deno task bench throughput [--models demo,small,sd] [--sizes 256,512] [--steps 3]
 *          [--encode-batches 2] [--batch 4] [--sd-batch 1] [--threads N] [--reduced]
 *          [--skip MODEL@SIZE,…]
 *
 * `--reduced` makes the SD-v1 VAE a quarter as wide (for checking the benchmark quickly);
 * `--skip sd@512` leaves out a configuration that would not fit in memory.
 *
 * @module
 */
import { join } from "node:path";
import { cpuUsage } from "node:process";
import { decodeModel, readGraph } from "../lib/onnx/model_io.ts";
import { graphFromModel } from "../lib/onnx/graph.ts";
import { buildLossAndGradient } from "../lib/onnx/loss_gradient.ts";
import { gradientEvaluator } from "../lib/model/evaluators.ts";
import { encodeImages, openVae } from "../lib/model/vae.ts";
import { seededRandom } from "../lib/base/random.ts";
import { writeDemoVae, writeSdDecoder, writeSdEncoder } from "../tests/fixtures/vae.ts";
import { countFlops } from "./flop_count.ts";
import { pathExists } from "./absent.ts";

/** Raised when the benchmark cannot go on; the message says what was expected and found. */
class ThroughputBenchError extends Error {
  override readonly name = "ThroughputBenchError";
}

/** GPUs for the estimate: FP32 peak from the vendors' data sheets. */
const GPUS = [
  { name: "A100", fp32: 19.5e12 },
  { name: "RTX 4090", fp32: 82.6e12 },
];
/** The share of FP32 peak assumed for the GPU estimate (cuDNN convolutions at these sizes). */
const GPU_UTILISATION = 0.4;
/** What the encode task batches. */
const ENCODE_BATCH = 4;
const SMALL_VAE = new URL("../../shared/models/vae-small-bsds/", import.meta.url).pathname;

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1] : fallback;
}

/** One configuration's figures (a line of JSON between the processes). */
interface Measured {
  model: string;
  size: number;
  batch: number;
  encodeS: number;
  stepS: number;
  /** CPU time of the process (every thread), per image: what load on the machine does not change. */
  encodeCpuS: number;
  stepCpuS: number;
  encodeFlops: number;
  stepFlops: number;
  setupS: number;
  peakRssMb: number;
}

function peakRssMb(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

async function modelFiles(model: string, dir: string, reduced: boolean) {
  if (model === "demo") return await writeDemoVae(join(dir, "demo"));
  if (model === "small") {
    return {
      encoder: `${SMALL_VAE}vae_encoder.onnx`,
      decoder: `${SMALL_VAE}vae_decoder.onnx`,
    };
  }
  if (model === "sd") {
    const shape = reduced ? { channels: [128, 128, 64, 32], layersPerBlock: 1 } : {};
    const encoder = await writeSdEncoder(join(dir, "sd"), shape);
    const { model: decoder } = await writeSdDecoder(join(dir, "sd"), shape);
    return { encoder, decoder };
  }
  throw new ThroughputBenchError(`--models: expected demo, small or sd, found "${model}"`);
}

/** Counts the FLOPs per image of one model at one size (in a process of its own). */
async function countPart(files: { encoder: string; decoder: string }, size: number) {
  const latentShape = [4, size / 8, size / 8];
  const encoderGraph = await readGraph(files.encoder);
  const input = encoderGraph.inputs[0].name;
  const encodeFlops = countFlops(encoderGraph, { [input]: [1, 3, size, size] }).total;
  // The loss-and-gradient graph of one image: the decoder forward and the latent's gradient.
  const one = await buildLossAndGradient(files.decoder, { batch: 1, latentShape });
  const stepFlops = countFlops(graphFromModel(decodeModel(one.bytes)), {
    [one.inputs.latent]: one.latentDims,
    [one.inputs.target]: one.imageDims,
  }).total;
  return { encodeFlops, stepFlops };
}

/** Times one model at one size (in a process of its own, so its peak memory is its own). */
async function timePart(
  model: string,
  files: { encoder: string; decoder: string },
  size: number,
) {
  const threads = Number(flag("threads", String(navigator.hardwareConcurrency)));
  const steps = Number(flag("steps", "3"));
  const encodeBatches = Number(flag("encode-batches", "2"));
  const batch = Number(flag(model === "sd" ? "sd-batch" : "batch", model === "sd" ? "1" : "4"));
  const setup = performance.now();
  const latentShape: [number, number, number] = [4, size / 8, size / 8];
  const runtime = { providers: ["cpu"], threads, log: () => {} };
  const rand = seededRandom(size);
  const vae = await openVae({
    encoder: { path: files.encoder, label: "encoder" },
    decoder: { path: files.decoder, label: "decoder" },
    model: { scaling_factor: 1, input_range: [-1, 1] },
    size,
    runtime,
  });
  const images = Float32Array.from(
    { length: ENCODE_BATCH * 3 * size * size },
    () => rand() * 2 - 1,
  );
  const dims = [ENCODE_BATCH, 3, size, size];
  await encodeImages(vae, images, dims); // warm-up
  const evaluator = await gradientEvaluator(files.decoder, "decoder", {
    batch,
    latentShape,
    normalization: vae.normalization,
    loss: "l2",
    charbonnierEps: 1e-3,
  }, runtime);
  const latents = Float32Array.from({ length: batch * 4 * (size / 8) ** 2 }, () => rand() - 0.5);
  const targets = Float32Array.from({ length: batch * 3 * size * size }, () => rand() * 2 - 1);
  await evaluator.evaluate(latents, targets, latents); // warm-up
  const setupS = (performance.now() - setup) / 1000;

  const cpuSeconds = (since: { user: number; system: number }) => {
    const used = cpuUsage(since);
    return (used.user + used.system) / 1e6;
  };
  let t = performance.now();
  let cpu = cpuUsage();
  for (let i = 0; i < encodeBatches; i++) await encodeImages(vae, images, dims);
  const encodeS = (performance.now() - t) / 1000 / (encodeBatches * ENCODE_BATCH);
  const encodeCpuS = cpuSeconds(cpu) / (encodeBatches * ENCODE_BATCH);
  await vae.encoder.release();
  t = performance.now();
  cpu = cpuUsage();
  for (let i = 0; i < steps; i++) {
    const { directions } = await evaluator.evaluate(latents, targets, latents);
    // The Adam update of the loop is a few multiply-adds per latent value; a plain step stands
    // in for it.
    for (let k = 0; k < latents.length; k++) latents[k] -= 0.01 * Math.sign(directions[k]);
  }
  const stepS = (performance.now() - t) / 1000 / (steps * batch);
  const stepCpuS = cpuSeconds(cpu) / (steps * batch);
  return { batch, encodeS, stepS, encodeCpuS, stepCpuS, setupS, peakRssMb: peakRssMb() };
}

/** Runs this file in a new process for one part of one configuration; its last line is JSON. */
async function child<T>(args: string[]): Promise<T | null> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (out.code !== 0) return null;
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

function duration(s: number): string {
  if (s < 1) return `${(s * 1000).toPrecision(3)} ms`;
  if (s < 120) return `${s.toPrecision(3)} s`;
  if (s < 7200) return `${(s / 60).toPrecision(3)} min`;
  if (s < 3 * 86400) return `${(s / 3600).toPrecision(3)} h`;
  return `${(s / 86400).toPrecision(3)} days`;
}

async function main(): Promise<void> {
  const part = flag("part", "");
  if (part) {
    const files = { encoder: flag("encoder", ""), decoder: flag("decoder", "") };
    const [model, size] = flag("one", "").split("@");
    const result = part === "flops"
      ? await countPart(files, Number(size))
      : await timePart(model, files, Number(size));
    console.log(JSON.stringify(result));
    return;
  }
  const models = flag("models", "demo,small,sd").split(",");
  const sizes = flag("sizes", "256,512").split(",").map(Number);
  const skip = new Set(flag("skip", "").split(",").filter(Boolean));
  for (const size of sizes) {
    if (!(size > 0 && size % 8 === 0)) {
      throw new ThroughputBenchError(`--sizes: expected multiples of 8, found ${size}`);
    }
  }
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  const threads = Number(flag("threads", String(navigator.hardwareConcurrency)));
  console.log(
    `threads ${threads}, ` +
      `${navigator.hardwareConcurrency} cores, load average ${load}; ` +
      `optimize batch ${flag("batch", "4")} (SD-v1: ${flag("sd-batch", "1")})`,
  );
  const passOn = Deno.args.filter((_, i, a) =>
    !["--models", "--sizes", "--skip"].includes(a[i]) &&
    !["--models", "--sizes", "--skip"].includes(a[i - 1])
  );
  const rows: Measured[] = [];
  const dir = await Deno.makeTempDir({ prefix: "latentforge-bench-throughput-" });
  try {
    for (const model of models) {
      if (model === "small" && !(await pathExists(SMALL_VAE))) {
        console.log(`small: skipped, ${SMALL_VAE} is absent`);
        continue;
      }
      const wanted = sizes.filter((size) => !skip.has(`${model}@${size}`));
      for (const size of sizes.filter((size) => !wanted.includes(size))) {
        console.log(`${model} ${size}²: skipped (--skip)`);
      }
      if (wanted.length === 0) continue;
      // Written once per model, read by every configuration's processes.
      const files = await modelFiles(model, dir, Deno.args.includes("--reduced"));
      for (const size of wanted) {
        const args = [
          "--one",
          `${model}@${size}`,
          "--encoder",
          files.encoder,
          "--decoder",
          files.decoder,
          ...passOn,
        ];
        const timed = await child<Omit<Measured, "model" | "size" | "encodeFlops" | "stepFlops">>(
          [...args, "--part", "time"],
        );
        const counted = await child<Pick<Measured, "encodeFlops" | "stepFlops">>(
          [...args, "--part", "flops"],
        );
        if (!timed || !counted) {
          console.log(`${model} ${size}²: failed (see the messages above)`);
          continue;
        }
        const m: Measured = { model, size, ...timed, ...counted };
        rows.push(m);
        console.log(
          `${model} ${size}²: encode ${duration(m.encodeS)}/image (CPU ${
            duration(m.encodeCpuS)
          }), one step ${duration(m.stepS)}/image (CPU ${
            duration(m.stepCpuS)
          }; batch ${m.batch}); setup ${m.setupS.toFixed(1)} s; peak RSS ${
            m.peakRssMb.toFixed(0)
          } MB`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  console.log(
    "\nWall time per image on this machine as loaded now, and in brackets the CPU time (all " +
      "threads) divided by the threads: the wall time of an idle machine, about.",
  );
  console.log(
    "\n| model | size | encode, per image | encode, per 1,000 | 100 steps, per image | " +
      "100 steps, per 1,000 | GFLOP per image: encode / 100 steps | GFLOP/s per CPU-second | " +
      `GPU estimate, encode / 100 steps per image (${GPUS.map((g) => g.name).join(" / ")}) |`,
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  const both = (wall: number, cpu: number) => `${duration(wall)} (${duration(cpu / threads)})`;
  for (const m of rows) {
    const flops100 = 100 * m.stepFlops;
    const cpuRate = m.stepFlops / m.stepCpuS / 1e9;
    const gpu = GPUS.map((g) =>
      `${duration(m.encodeFlops / (g.fp32 * GPU_UTILISATION))} / ${
        duration(flops100 / (g.fp32 * GPU_UTILISATION))
      }`
    ).join(", ");
    console.log(
      `| ${m.model} | ${m.size}² | ${both(m.encodeS, m.encodeCpuS)} | ${
        both(1000 * m.encodeS, 1000 * m.encodeCpuS)
      } | ${both(100 * m.stepS, 100 * m.stepCpuS)} | ${both(1e5 * m.stepS, 1e5 * m.stepCpuS)} | ${
        (m.encodeFlops / 1e9).toPrecision(3)
      } / ${(flops100 / 1e9).toPrecision(3)} | ${cpuRate.toPrecision(3)} | ${gpu} |`,
    );
  }
  console.log(
    `\nGPU estimate: FLOPs ÷ (${GPU_UTILISATION * 100} % of the FP32 peak: ${
      GPUS.map((g) => `${g.name} ${g.fp32 / 1e12} TFLOP/s`).join(", ")
    }); not measured.`,
  );
}

await main();

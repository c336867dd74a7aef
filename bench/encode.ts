/**
 * Encode throughput end to end: a folder of generated JPEGs (500×375, quality 90, ImageNet's
 * typical size) to 256² latents with an SD-v1-layout encoder (channels 32/64/64/64, random
 * weights written for both sides), three ways in the same run:
 *
 * - _latentforge_: `deno task run encode` on the folder, with a fresh cache, timed as a whole
 *   process (start-up, planning, fetch-images, verify-sizes, label-split, preprocess, encode);
 * - _encoder alone_: the encode task's session over the images already preprocessed and held in
 *   memory, in batches as the task makes them, timed from the first batch to the last latent;
 * - _PyTorch_: bench/encode_torch.py, PIL decode + the same crop and a lanczos resize in a
 *   DataLoader of `--workers` processes, the same encoder and weights in torch on the same
 *   threads, each latent saved as `.npy`; timed as a whole process.
 *
 * The three alternate over `--rounds`, in an order that rotates each round; medians and ratios
 * are printed with the load average. Then one watched run of the pipeline (bench/encode_gaps.ts)
 * tells how long the encoder ran, waited for images and recorded, the batch sizes, and the
 * cache bytes per item.
 *
 * usage: deno task bench encode [--images 2000] [--rounds 3] [--threads N] [--workers 2]
 *                               [--size 256] [--skip-torch] [--skip-gaps]
 *
 * @module
 */
import { join } from "node:path";
import { decodeNpy } from "../lib/format/npy.ts";
import { removeTree } from "./absent.ts";
import { positiveInt } from "./args.ts";
import { COMPARED_IMAGES } from "./encode_alone.ts";
import type { EncodeGaps } from "./encode_gaps.ts";
import { ensureJpegs, jpegName, writeBenchVae } from "./encode_inputs.ts";
import { median } from "./timing.ts";
import { PYTHON, torchVersion } from "./torch_child.ts";
import denoJson from "../deno.json" with { type: "json" };

/** Raised when a side of the benchmark fails; the message names it and what it said. */
class EncodeBenchError extends Error {
  override readonly name = "EncodeBenchError";
}

const PROJECT = new URL("../", import.meta.url).pathname;
const WORK = new URL("./.work/", import.meta.url).pathname;
/** What the encode task batches. */
const BATCH = 4;

const images = positiveInt("images", "2000");
const rounds = positiveInt("rounds", "3");
const threads = positiveInt("threads", String(navigator.hardwareConcurrency));
const workers = positiveInt("workers", "2");
const size = positiveInt("size", "256");
const skipTorch = Deno.args.includes("--skip-torch");
const skipGaps = Deno.args.includes("--skip-gaps");

const loadAverage = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");

/** A finished side: wall seconds, CPU seconds (every thread and child), peak RSS. */
interface Timed {
  seconds: number;
  cpuSeconds?: number;
  peakMb?: number;
  stdout: string;
  stderr: string;
}

const GNU_TIME = "/usr/bin/time";
const hasGnuTime = await Deno.stat(GNU_TIME).then(() => true, (e) => {
  if (e instanceof Deno.errors.NotFound) return false;
  throw e;
});

/** Runs a command to its end, timed as a whole process (and its CPU through GNU time). */
async function timed(
  what: string,
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Timed> {
  const [program, programArgs] = hasGnuTime
    ? [GNU_TIME, ["-f", "bench-usage %U %S %M", cmd, ...args]]
    : [cmd, args];
  const started = performance.now();
  const out = await new Deno.Command(program, {
    args: programArgs,
    cwd: PROJECT,
    env: { ORT_DISABLE_TELEMETRY: "1", PYTHONDONTWRITEBYTECODE: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - started) / 1000;
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  if (out.code !== 0) {
    throw new EncodeBenchError(`${what} exited with code ${out.code}:\n${stderr || stdout}`);
  }
  const usage = /bench-usage ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
  return {
    seconds,
    cpuSeconds: usage ? Number(usage[1]) + Number(usage[2]) : undefined,
    peakMb: usage ? Number(usage[3]) / 1024 : undefined,
    stdout,
    stderr,
  };
}

/** `deno task run` as deno.json spells it, with this deno. */
function runTask(): [string, string[]] {
  const [deno, ...args] = denoJson.tasks.run.split(" ");
  if (deno !== "deno") throw new EncodeBenchError(`deno.json's run task: ${denoJson.tasks.run}`);
  return [Deno.execPath(), args];
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await Deno.link(from, to);
  } catch (error) {
    // On another filesystem a hard link cannot be made; a copy reads the same.
    if (!(error instanceof Deno.errors.NotSupported || /EXDEV|cross-device/i.test(String(error)))) {
      throw error;
    }
    await Deno.copyFile(from, to);
  }
}

interface Setup {
  dir: string;
  jpegs: string;
  config: string;
  vae: Awaited<ReturnType<typeof writeBenchVae>>;
}

async function setUp(): Promise<Setup> {
  const jpegs = join(WORK, "encode-jpegs");
  const meanBytes = await ensureJpegs(jpegs, images);
  const dir = await Deno.makeTempDir({ prefix: "latentforge-bench-encode-" });
  // The pipeline reads a folder of exactly the first N images: hard links (a symbolic link
  // would lead outside the dataset folder, which a run may not read).
  const folder = join(dir, "images");
  await Deno.mkdir(folder);
  for (let i = 0; i < images; i++) {
    await linkOrCopy(join(jpegs, jpegName(i)), join(folder, jpegName(i)));
  }
  const vae = await writeBenchVae(join(dir, "vae"));
  const config = join(dir, "config.json");
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      dataset: { kind: "folder", name: "bench-encode", path: folder },
      preprocess: { size, crop: "center" },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: vae.decoder },
        scaling_factor: 1,
        providers: ["cpu"],
        threads,
      },
      package: { out_dir: join(dir, "out") },
    }),
  );
  console.log(
    `${images} JPEGs 500×375 (mean ${(meanBytes / 1024).toFixed(1)} KiB) → ${size}² latents; ` +
      `encoder channels 32/64/64/64, batches of ${BATCH}; ${threads} threads, ` +
      `${navigator.hardwareConcurrency} cores; load average ${loadAverage()}`,
  );
  return { dir, jpegs: folder, config, vae };
}

async function runLatentforge(s: Setup, cache: string): Promise<Timed> {
  await removeTree(cache);
  const [deno, args] = runTask();
  return await timed("deno task run encode", deno, [
    ...args,
    "encode",
    "--config",
    s.config,
    "--cache",
    cache,
  ]);
}

async function runAlone(s: Setup): Promise<Timed> {
  const script = new URL("./encode_alone.ts", import.meta.url).pathname;
  const t = await timed("bench/encode_alone.ts", Deno.execPath(), [
    "run",
    "-A",
    script,
    s.vae.encoder,
    s.vae.decoder,
    s.jpegs,
    String(images),
    String(size),
    String(threads),
    String(BATCH),
    join(s.dir, "alone.npy"),
  ]);
  // The encoder's own span, not the process: preprocessing and loading are not its work.
  const report = JSON.parse(t.stdout.trim().split("\n").at(-1)!);
  return { ...t, seconds: report.seconds, cpuSeconds: report.cpuSeconds, peakMb: undefined };
}

async function runTorch(s: Setup): Promise<Timed> {
  const out = join(s.dir, "torch");
  await removeTree(out);
  const script = new URL("./encode_torch.py", import.meta.url).pathname;
  return await timed("bench/encode_torch.py", PYTHON, [
    script,
    s.vae.weightsDir,
    s.jpegs,
    String(images),
    out,
    String(size),
    String(BATCH),
    String(workers),
    String(threads),
  ]);
}

/** latentforge's latents (encoder alone) against PyTorch's for the first images. */
async function compareLatents(s: Setup): Promise<string> {
  const ours = decodeNpy(await Deno.readFile(join(s.dir, "alone.npy"))).data as Float32Array;
  const per = ours.length / Math.min(COMPARED_IMAGES, images);
  let dot = 0, na = 0, nb = 0, worst = 0;
  for (let i = 0; i < ours.length / per; i++) {
    const name = jpegName(i).replace(/\.jpg$/, ".npy");
    const theirs = decodeNpy(await Deno.readFile(join(s.dir, "torch", name))).data as Float32Array;
    for (let k = 0; k < per; k++) {
      const a = ours[i * per + k], b = theirs[k];
      dot += a * b;
      na += a * a;
      nb += b * b;
      worst = Math.max(worst, Math.abs(a - b));
    }
  }
  return `latents of the first ${ours.length / per} images, latentforge against PyTorch: ` +
    `cosine similarity ${(dot / Math.sqrt(na * nb)).toFixed(6)}, largest difference ` +
    `${worst.toExponential(2)} (the two resize filters differ by under half an 8-bit step)`;
}

/** Bytes under the cache per item, by kind. */
async function cacheBytes(cache: string): Promise<string> {
  const sizes = { tensors: 0, latents: 0, other: 0, records: 0 };
  const tensorBytes = 128 + 4 * 3 * size * size;
  const latentBytes = 128 + 4 * 4 * (size / 8) ** 2;
  const walk = async (dir: string, inObjects: boolean) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) {
        await walk(path, inObjects || e.name === "objects");
        continue;
      }
      const bytes = (await Deno.stat(path)).size;
      if (!inObjects) sizes.records += bytes;
      else if (bytes === tensorBytes) sizes.tensors += bytes;
      else if (bytes === latentBytes) sizes.latents += bytes;
      else sizes.other += bytes;
    }
  };
  await walk(cache, false);
  const total = sizes.tensors + sizes.latents + sizes.other + sizes.records;
  const kb = (b: number) => `${(b / images / 1024).toFixed(1)} KiB`;
  return `cache bytes per item: ${kb(total)} — preprocessed tensor ${kb(sizes.tensors)}, ` +
    `latent ${kb(sizes.latents)}, image copy and models ${kb(sizes.other)}, records and ` +
    `journal ${kb(sizes.records)}`;
}

async function watchedRun(s: Setup, cache: string): Promise<EncodeGaps> {
  await removeTree(cache);
  const script = new URL("./encode_gaps.ts", import.meta.url).pathname;
  const t = await timed("bench/encode_gaps.ts", Deno.execPath(), [
    "run",
    "-A",
    "--unstable-kv",
    "--unstable-cron",
    script,
    "run",
    "encode",
    "--config",
    s.config,
    "--cache",
    cache,
  ]);
  const line = t.stderr.split("\n").find((l) => l.startsWith("encode-gaps "));
  if (!line) throw new EncodeBenchError(`bench/encode_gaps.ts printed no figures:\n${t.stderr}`);
  return JSON.parse(line.slice("encode-gaps ".length));
}

const line = (name: string, t: Timed) =>
  `${name.padEnd(26)} ${t.seconds.toFixed(1).padStart(7)} s ${
    (images / t.seconds).toFixed(2).padStart(7)
  } images/s${t.cpuSeconds === undefined ? "" : `, CPU ${t.cpuSeconds.toFixed(1)} s`}${
    t.peakMb === undefined ? "" : `, peak RSS ${t.peakMb.toFixed(0)} MB`
  }`;

async function main(): Promise<void> {
  const torch = skipTorch ? "" : await torchVersion();
  const s = await setUp();
  const cache = join(s.dir, "cache");
  try {
    const sides: [string, () => Promise<Timed>][] = [
      ["latentforge end to end", () => runLatentforge(s, cache)],
      ["encoder alone", () => runAlone(s)],
      ...(torch ? [[`PyTorch ${torch}`, () => runTorch(s)] as [string, () => Promise<Timed>]] : []),
    ];
    const results = new Map<string, Timed[]>(sides.map(([name]) => [name, []]));
    let cacheLine = "";
    for (let round = 1; round <= rounds; round++) {
      for (let k = 0; k < sides.length; k++) {
        const [name, run] = sides[(k + round - 1) % sides.length];
        const load = loadAverage();
        const t = await run();
        results.get(name)!.push(t);
        console.log(`round ${round}: ${line(name, t)} (load average before: ${load})`);
        if (name === sides[0][0] && !cacheLine) cacheLine = await cacheBytes(cache);
      }
    }
    const med = (name: string): Timed => {
      const ts = results.get(name)!;
      const pick = (f: (t: Timed) => number | undefined) => {
        const xs = ts.map(f).filter((x): x is number => x !== undefined);
        return xs.length ? median(xs) : undefined;
      };
      return {
        seconds: pick((t) => t.seconds)!,
        cpuSeconds: pick((t) => t.cpuSeconds),
        peakMb: pick((t) => t.peakMb),
        stdout: "",
        stderr: "",
      };
    };
    console.log(`medians of ${rounds} round(s):`);
    for (const [name] of sides) console.log(`  ${line(name, med(name))}`);
    const lf = med(sides[0][0]).seconds, alone = med("encoder alone").seconds;
    console.log(
      `latentforge end to end: ${(alone / lf).toFixed(3)} of the encoder alone's throughput ` +
        `(target ≥ 0.90)`,
    );
    if (torch) {
      const ref = med(sides[2][0]).seconds;
      console.log(
        `latentforge end to end: ${(ref / lf).toFixed(3)}× PyTorch's throughput (target ≥ 1.2); ` +
          `encoder alone ${(ref / alone).toFixed(3)}× PyTorch end to end`,
      );
      console.log(await compareLatents(s));
    }
    console.log(cacheLine);
    if (!skipGaps) {
      const g = await watchedRun(s, cache);
      console.log(
        `watched run: the encoder ran ${(g.encoderMs / 1000).toFixed(1)} s of its ` +
          `${(g.spanMs / 1000).toFixed(1)} s span (${
            (100 * g.encoderMs / g.spanMs).toFixed(1)
          }%); ` +
          `waited ${(g.waitMs / 1000).toFixed(2)} s for preprocessed images; recording took ` +
          `${(g.recordMs / 1000).toFixed(2)} s; batches by size ${JSON.stringify(g.batchSizes)}`,
      );
    }
    console.log(`load average after: ${loadAverage()}`);
  } finally {
    await removeTree(s.dir);
  }
}

await main();

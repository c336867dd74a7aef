/**
 * Preprocess benchmark: 1,000 generated 1024×1024 PNGs in the FFHQ layout to 256×256 float32
 * NCHW `.npy` files in [-1, 1], with latentforge's preprocessing (PNG fast path where libdeflate is
 * installed, and once more decoding through libpng) and, in the same run on the same cores, with
 * a Pillow + NumPy script (bench/preprocess_pillow.py) on a pool of one process per core.
 *
 * Both sides are timed the same way, inside their own process: wall clock and CPU time (all
 * threads, and for Pillow all pool workers) from just before the first image is read to the
 * last `.npy` written; neither program's start-up or module loading counts. Every side runs
 * once per round, in an order that rotates from round to round; the median and the best of the
 * rounds are reported for each.
 *
 * Run: `deno task bench preprocess [--count 1000] [--size 256] [--rounds 2] [--jobs N]`
 *
 * The generated images are cached in bench/.work/ffhq1024/ and their generation is not timed.
 *
 * @module
 */

import sharp from "sharp";
import { Buffer } from "node:buffer";
import { availableParallelism } from "node:os";
import process from "node:process";
import { decodeNpy, encodeNpy } from "../lib/format/npy.ts";
import { writeFileAtomic } from "../lib/store/objects.ts";
import { preprocessConcurrency, preprocessImage } from "../lib/image/preprocess.ts";
import { loadLibdeflate } from "../lib/image/libdeflate.ts";
import { seededRandom } from "../lib/base/random.ts";
import { outputUnlessAbsent, removeTree } from "./absent.ts";

const PYTHON = "/usr/bin/python3";
const WORK = new URL("./.work/", import.meta.url).pathname;
const GENERATOR_VERSION = "2";
const PILLOW_NAME = "Pillow + NumPy (multiprocessing)";

function argValue(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(Deno.args[i + 1]);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`--${name}: expected a positive integer, found ${Deno.args[i + 1]}`);
  }
  return value;
}

const count = argValue("count", 1000);
const rounds = argValue("rounds", 2);
const size = argValue("size", 256);
// As many images in flight as the preprocess task keeps.
const jobs = argValue("jobs", preprocessConcurrency());
const cores = availableParallelism();
const root = `${WORK}ffhq1024`;
const deflate = loadLibdeflate();

/** FFHQ keeps 1,000 images per folder: images1024x1024/00000/00000.png … 00999.png. */
function imagePath(i: number): string {
  const folder = String(Math.floor(i / 1000) * 1000).padStart(5, "0");
  return `images1024x1024/${folder}/${String(i).padStart(5, "0")}.png`;
}

const PALETTE = ["#1d3557", "#457b9d", "#a8dadc", "#e63946", "#f4a261", "#2a9d8f", "#e9c46a"];

/** Textured backgrounds are slow to render, so a few are made once and shared. */
async function backgrounds(): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let k = 0; k < 6; k++) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="1024" height="1024">
      <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
        <stop offset="0" stop-color="${PALETTE[k]}"/><stop offset="1" stop-color="${
      PALETTE[(k + 3) % PALETTE.length]
    }"/></linearGradient>
      <filter id="n"><feTurbulence type="fractalNoise" baseFrequency="0.0${2 + k} 0.05"
        numOctaves="4" seed="${
      k + 1
    }"/><feColorMatrix type="saturate" values="0.3"/></filter></defs>
      <rect width="1024" height="1024" fill="url(#g)"/>
      <rect width="1024" height="1024" filter="url(#n)" opacity="0.35"/></svg>`;
    out.push(
      new Uint8Array(
        await sharp(new TextEncoder().encode(svg)).removeAlpha().raw().toBuffer(),
      ),
    );
  }
  return out;
}

/** A face-like figure: head, eyes, mouth and a few strokes, placed and coloured per image. */
function figureSvg(i: number): string {
  const rnd = seededRandom(i + 1);
  const pick = () => PALETTE[Math.floor(rnd() * PALETTE.length)];
  const cx = 380 + rnd() * 260;
  const cy = 380 + rnd() * 260;
  const r = 200 + rnd() * 120;
  const strokes = Array.from({ length: 5 }, () => {
    const x = rnd() * 1024;
    const y = rnd() * 1024;
    return `<path d="M${x} ${y} q${rnd() * 200 - 100} ${rnd() * 200 - 100} ${rnd() * 300 - 150} ${
      rnd() * 80
    }" stroke="${pick()}" stroke-width="${4 + rnd() * 10}" fill="none"/>`;
  }).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="1024" height="1024">
    ${strokes}
    <circle cx="${cx}" cy="${cy}" r="${r}" fill="${pick()}" opacity="0.9"/>
    <ellipse cx="${cx - r * 0.35}" cy="${cy - r * 0.2}" rx="${r * 0.15}" ry="${
    r * 0.1
  }" fill="#222"/>
    <ellipse cx="${cx + r * 0.35}" cy="${cy - r * 0.2}" rx="${r * 0.15}" ry="${
    r * 0.1
  }" fill="#222"/>
    <path d="M${cx - r * 0.45} ${cy + r * 0.35} Q${cx} ${cy + r * (0.5 + rnd() * 0.3)} ${
    cx + r * 0.45
  } ${cy + r * 0.35}" stroke="#9b2226" stroke-width="${r * 0.07}" fill="none"/></svg>`;
}

/** Generates the image set once; a marker file records that it is complete. */
async function ensureImages(): Promise<void> {
  const marker = `${root}/complete.json`;
  try {
    const done = JSON.parse(await Deno.readTextFile(marker));
    if (done.version === GENERATOR_VERSION && done.count >= count) return;
    // Images of another generator version are not reused.
    if (done.version !== GENERATOR_VERSION) await Deno.remove(root, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  console.log(`generating ${count} 1024×1024 PNG images in ${root} (once, not timed) …`);
  const started = performance.now();
  const bgs = await backgrounds();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const path = `${root}/${imagePath(i)}`;
      try {
        await Deno.stat(path);
        continue;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      const { data, info } = await sharp(bgs[i % bgs.length], {
        raw: { width: 1024, height: 1024, channels: 3 },
      })
        .composite([{ input: Buffer.from(figureSvg(i)) }])
        .raw()
        .toBuffer({ resolveWithObject: true });
      // Stored like FFHQ's files (written by Pillow): 8-bit RGB, each row's filter chosen
      // adaptively, zlib level 6.
      const png = await sharp(data, { raw: info }).removeAlpha()
        .png({ adaptiveFiltering: true, compressionLevel: 6 })
        .toBuffer();
      await writeFileAtomic(path, new Uint8Array(png));
    }
  };
  await Promise.all(Array.from({ length: cores }, worker));
  const done = JSON.stringify({ count, version: GENERATOR_VERSION });
  await writeFileAtomic(marker, new TextEncoder().encode(done));
  console.log(`generated in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

interface Timing {
  name: string;
  /** Wall-clock time. */
  seconds: number;
  /** CPU time (user + system) over all threads and processes of the program. */
  cpuSeconds: number;
}

async function runLatentforge(outDir: string, fastPng: boolean): Promise<Timing> {
  await removeTree(outDir);
  await Deno.mkdir(`${outDir}/00000`, { recursive: true });
  for (let f = 1000; f < count; f += 1000) {
    await Deno.mkdir(`${outDir}/${String(f).padStart(5, "0")}`, { recursive: true });
  }
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      const rel = imagePath(i).replace("images1024x1024/", "");
      const { tensor, shape } = await preprocessImage(`${root}/${imagePath(i)}`, {
        size,
        preview: false,
        fastPng,
      });
      const npy = encodeNpy({ dtype: "<f4", shape, data: tensor });
      await Deno.writeFile(`${outDir}/${rel.replace(/\.png$/, ".npy")}`, npy);
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  const cpu = process.cpuUsage(cpuStart);
  return {
    name: fastPng && deflate ? "latentforge" : "latentforge, libpng decoding",
    seconds: (performance.now() - started) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

async function runPillow(outDir: string): Promise<Timing> {
  await removeTree(outDir);
  const script = new URL("./preprocess_pillow.py", import.meta.url).pathname;
  const out = await new Deno.Command(PYTHON, {
    args: [script, `${root}/images1024x1024`, outDir, String(size), String(cores), String(count)],
    env: { PYTHONDONTWRITEBYTECODE: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error(`${script} exited with code ${out.code}`);
  // Timed by the script itself, over the same span as latentforge's side.
  const report = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    seconds: number;
    cpu_seconds: number;
  };
  return { name: PILLOW_NAME, seconds: report.seconds, cpuSeconds: report.cpu_seconds };
}

/** Both programs did the same work: their tensors agree to a fraction of one 8-bit step. */
async function compareOutputs(a: string, b: string): Promise<number> {
  let worst = 0;
  for (let i = 0; i < count; i += Math.max(1, Math.floor(count / 20))) {
    const rel = imagePath(i).replace("images1024x1024/", "").replace(/\.png$/, ".npy");
    const x = decodeNpy(await Deno.readFile(`${a}/${rel}`)).data as Float32Array;
    const y = decodeNpy(await Deno.readFile(`${b}/${rel}`)).data as Float32Array;
    if (x.length !== y.length) throw new Error(`${rel}: ${x.length} vs ${y.length} values`);
    let sum = 0;
    for (let k = 0; k < x.length; k++) sum += Math.abs(x[k] - y[k]);
    worst = Math.max(worst, (sum / x.length) * 127.5);
  }
  return worst;
}

const pillowCheck = await outputUnlessAbsent(
  new Deno.Command(PYTHON, { args: ["-c", "import PIL, numpy"], stdout: "null", stderr: "null" }),
);
const pillowAvailable = pillowCheck?.code === 0;

await ensureImages();
console.log(
  `preprocess: ${count} images 1024×1024 PNG → ${size}×${size} float32 NCHW .npy, ${cores} cores`,
);
console.log(
  deflate
    ? `latentforge inflates the PNGs with ${deflate.path}, unfilters them with WebAssembly and ` +
      "resizes with sharp; the libpng row decodes through sharp (libvips, libpng) instead"
    : "latentforge decodes and resizes with sharp (libdeflate off or not installed)",
);
// Other work on the machine skews a single run: the programs alternate over several rounds, in
// a rotating order, and each one's median and best are reported. CPU time (images per
// CPU-second) is reported too: it hardly depends on other load.
const all = new Map<string, Timing[]>();
const loadavg = () => Deno.loadavg().map((l) => l.toFixed(2)).join(" ");
// Cores used (CPU time over wall time) shows what other work on the machine left each side: a
// figure taken while the machine is shared says so here.
const line = (t: Timing) =>
  `${t.name.padEnd(36)} ${t.seconds.toFixed(2).padStart(7)} s wall ${
    (count / t.seconds).toFixed(1).padStart(6)
  } images/s │ ${t.cpuSeconds.toFixed(1).padStart(6)} s CPU ${
    (count / t.cpuSeconds).toFixed(2).padStart(6)
  } images/CPU-s │ ${(t.cpuSeconds / t.seconds).toFixed(2)} cores`;
const runs = [
  () => runLatentforge(`${WORK}out-latentforge`, true),
  ...(deflate ? [() => runLatentforge(`${WORK}out-latentforge-libpng`, false)] : []),
  ...(pillowAvailable ? [() => runPillow(`${WORK}out-pillow`)] : []),
];
for (let round = 1; round <= rounds; round++) {
  for (let k = 0; k < runs.length; k++) {
    const load = loadavg();
    const t = await runs[(k + round - 1) % runs.length]();
    all.set(t.name, [...all.get(t.name) ?? [], t]);
    console.log(`round ${round}: ${line(t)}  (load average before: ${load})`);
  }
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const summary = (pick: (xs: number[]) => number) =>
  new Map([...all].map(([name, ts]) => [name, {
    name,
    seconds: pick(ts.map((t) => t.seconds)),
    cpuSeconds: pick(ts.map((t) => t.cpuSeconds)),
  }]));
const medians = summary(median);
const best = summary((xs) => Math.min(...xs));
if (!pillowAvailable) {
  console.log(
    `Pillow run skipped: ${PYTHON} cannot import PIL and numpy (python3-pil, python3-numpy)`,
  );
}

console.log(`median of ${rounds} round(s):`);
for (const t of medians.values()) console.log(`         ${line(t)}`);
console.log(`best of ${rounds} round(s):`);
for (const t of best.values()) console.log(`         ${line(t)}`);
const pillow = medians.get(PILLOW_NAME);
if (pillow !== undefined) {
  for (const t of medians.values()) {
    if (t.name === PILLOW_NAME) continue;
    const b = best.get(t.name)!, pb = best.get(PILLOW_NAME)!;
    console.log(
      `${t.name}: ${(pillow.seconds / t.seconds).toFixed(2)}× Pillow's throughput (wall, ` +
        `medians; ${(pb.seconds / b.seconds).toFixed(2)}× best against best), ${
          (pillow.cpuSeconds / t.cpuSeconds).toFixed(2)
        }× per CPU-second`,
    );
  }
  const diff = await compareOutputs(`${WORK}out-latentforge`, `${WORK}out-pillow`);
  console.log(`largest mean |difference| between the two outputs: ${diff.toFixed(3)}/255`);
}
// The outputs take ~0.8 GB per program; only the generated inputs are worth keeping.
for (const dir of ["out-latentforge", "out-latentforge-libpng", "out-pillow"]) {
  await removeTree(`${WORK}${dir}`);
}

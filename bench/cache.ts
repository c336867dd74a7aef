/**
 * `deno task bench cache [--images N] [--size 256] [--model DIR]`: how much an encode-only
 * dataset from a local folder adds to the cache, per item and by kind, against the bytes of its
 * latents — the ImageNet recipe's shape (class folders, center crop, flips, `optimize.method:
 * "none"`, safetensors shards) on N generated 500×375 JPEGs (ImageNet's typical size, quality
 * 90) in 10 classes, through the real pipeline into a fresh cache.
 *
 * The model is `../shared/models/vae-small-bsds` (SD-v1 layout: 4 latent channels, 8× smaller
 * sides) when present, else the demo VAE (the same latent geometry). The table gives each kind
 * of object by the task whose records name it, the records (KV database and journal), and what
 * the images and float32 tensors would have taken had they been stored.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { positiveInt } from "./args.ts";
import { pathExists } from "./absent.ts";
import { openRecords } from "../lib/store/records.ts";
import { pipeline } from "../pipeline.ts";
import { syntheticImageSvg } from "../tests/fixtures/synthetic_images.ts";
import { writeDemoVae } from "../tests/fixtures/vae.ts";

const images = positiveInt("images", "200");
const size = positiveInt("size", "256");
const here = fileURLToPath(new URL(".", import.meta.url));
const work = join(here, ".work", "cache");
const data = join(work, `images-${images}`);
const smallVae = join(here, "..", "..", "shared", "models", "vae-small-bsds");

/** N JPEGs of 500×375 in `train/class-<k>/`, written once. */
async function ensureImages(): Promise<void> {
  const marker = join(data, ".complete");
  if (await pathExists(marker)) return;
  for (let k = 0; k < images; k++) {
    const dir = join(data, "train", `class-${k % 10}`);
    await Deno.mkdir(dir, { recursive: true });
    await sharp(new TextEncoder().encode(syntheticImageSvg(k, { width: 500, height: 375 })))
      .flatten({ background: "#808080" })
      .jpeg({ quality: 90 })
      .toFile(join(dir, `${String(k).padStart(6, "0")}.JPEG`));
  }
  await Deno.writeTextFile(marker, String(images));
}

async function model(): Promise<{ encoder: string; decoder: string; name: string }> {
  const explicit = Deno.args.includes("--model")
    ? Deno.args[Deno.args.indexOf("--model") + 1]
    : undefined;
  const dir = explicit ?? (await pathExists(join(smallVae, "vae_encoder.onnx")) ? smallVae : null);
  if (dir !== null) {
    const name = dir === smallVae ? "vae-small-bsds" : dir;
    return { encoder: join(dir, "vae_encoder.onnx"), decoder: join(dir, "vae_decoder.onnx"), name };
  }
  return { ...await writeDemoVae(join(work, "demo-vae")), name: "the demo VAE" };
}

/** Bytes of the files under `dir`, recursively (0 when absent). */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  try {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      total += e.isDirectory ? await treeBytes(path) : (await Deno.lstat(path)).size;
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return total;
}

await ensureImages();
const vae = await model();
const cache = join(work, "run-cache");
const out = join(work, "run-out");
for (const dir of [cache, out]) await Deno.remove(dir, { recursive: true }).catch(() => {});
const configPath = join(work, "config.json");
await Deno.writeTextFile(
  configPath,
  JSON.stringify({
    dataset: { kind: "imagefolder", splits: { train: join(data, "train") } },
    preprocess: { size, crop: "center", flip: true },
    model: { encoder: { path: vae.encoder }, decoder: { path: vae.decoder }, scaling_factor: 1 },
    optimize: { method: "none" },
    package: { out_dir: out, layout: "shards", samples: 0 },
  }),
);
console.log(`${images} images of 500×375 at ${size}² with flips, encode-only, ${vae.name}…`);
const started = performance.now();
const run = await new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-all",
    "--unstable-kv",
    "--unstable-cron",
    join(here, "..", "pipeline.ts"),
    "run",
    "--config",
    configPath,
    "--cache",
    cache,
  ],
  stdout: "piped",
  stderr: "piped",
}).output();
if (run.code !== 0) {
  throw new Error(`the run failed (exit ${run.code}):\n${new TextDecoder().decode(run.stderr)}`);
}
console.log(`ran in ${((performance.now() - started) / 1000).toFixed(1)} s`);

const records = await openRecords(cache);
const byTask = new Map<string, number>();
const seen = new Set<string>();
try {
  for (const task of pipeline.tasks.map((t) => t.name)) {
    let bytes = 0;
    for (const rec of (await records.actions(task)).values()) {
      for (const digest of Object.values(rec.objects)) {
        if (seen.has(digest)) continue; // optimize "none" names encode's latent again
        seen.add(digest);
        bytes += (await Deno.stat(join(cache, "objects", digest.slice(0, 2), digest))).size;
      }
    }
    byTask.set(task, bytes);
  }
} finally {
  records.close();
}
const objects = await treeBytes(join(cache, "objects"));
const recordFiles = [...Deno.readDirSync(cache)].filter((e) =>
  e.name.startsWith("records.sqlite3")
);
let recordBytes = await treeBytes(join(cache, "journal"));
for (const e of recordFiles) recordBytes += (await Deno.stat(join(cache, e.name))).size;
const total = await treeBytes(cache);
const items = 2 * images;
const latents = byTask.get("encode")!;
let sources = 0;
for await (const e of Deno.readDir(join(data, "train"))) {
  sources += await treeBytes(join(data, "train", e.name));
}
const rows: [string, number][] = [
  ["fetch-json (index, listing, digest memo)", byTask.get("fetch-json")!],
  ["fetch-images (images: read in place)", byTask.get("fetch-images")!],
  ["preprocess (tensors: computed again)", byTask.get("preprocess")!],
  ["encode (the latents)", latents],
  [
    "label-split, optimize (none: encode's latents)",
    byTask.get("label-split")! + byTask.get("optimize")!,
  ],
  ["package (shards, index, manifest, report)", byTask.get("package")!],
  [
    "other objects (earlier package files)",
    objects - [...byTask.values()].reduce((a, b) => a + b, 0),
  ],
  ["records (KV database and journal)", recordBytes],
  ["the whole cache", total],
  ["the whole cache but package's files", total - byTask.get("package")!],
  ["— had the images been copied", sources],
  ["— had float32 tensors been stored", items * (128 + 4 * 3 * size * size)],
];
console.log(`\n${items} items (${images} images and their flips); latents ${latents} bytes`);
console.log(`${"".padEnd(48)} ${"bytes".padStart(12)} ${"per item".padStart(10)} × latents`);
for (const [label, bytes] of rows) {
  console.log(
    `${label.padEnd(48)} ${String(bytes).padStart(12)} ${(bytes / items).toFixed(0).padStart(10)} ${
      (bytes / latents).toFixed(3).padStart(9)
    }`,
  );
}

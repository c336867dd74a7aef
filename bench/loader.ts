/**
 * Loader benchmark: a shards dataset of 1.3 million images (latents of 256 floats in three
 * buckets, two splits, text, integer and number labels, a caption and metadata per image) made by
 * the package's own writers — shards by `rowColumns` + `asSafetensors` + `writeSafetensorsFile` as
 * `writeShards` makes them, the index by `IndexWriter` fed row by row — then opened in fresh
 * Python processes by examples/torch_dataset.py, against one numpy memory map of the same latents
 * (bench/loader_torch.py; bench/README.md says what each side does).
 *
 * Measured per process: RSS after `import torch, numpy`; time and RSS to open `LatentDataset`;
 * `--reads` random `ds[i]` with every field ("items"), with `fields=("latents",)` ("latents"), and
 * as many rows of the memory map ("reference"), twice over the same indices (the first pass in the
 * fresh process, the second warm); and the `BucketBatchSampler` over the whole set. Files start
 * in the page cache, or with `--evict latents` (or `all`) are dropped from it first. The sides
 * rotate, `--rounds` times; medians are printed with the load average.
 *
 * Run: `deno task bench loader [--count 1300000] [--shard-size 1000] [--reads 1000]
 * [--rounds 5] [--evict none|latents|all]`. The generated dataset is kept in
 * bench/.work/loader-<count>-<shard-size>/ (about 2.9 GB at 1.3 M images); its generation is not
 * timed.
 *
 * @module
 */
import { join } from "node:path";
import { seededRandom } from "../lib/base/random.ts";
import type { Conditioning } from "../lib/image/preprocess.ts";
import { writeSafetensorsFile } from "../lib/format/safetensors_file.ts";
import { asSafetensors, type ColumnOptions, rowColumns } from "../lib/package/columns.ts";
import { tensorNames } from "../lib/package/dataset_index.ts";
import { type FileFacts, safetensorsOffsets } from "../lib/package/index_files.ts";
import { IndexWriter } from "../lib/package/index_writer.ts";
import type { PackageRow } from "../lib/package/rows.ts";
import { SHARD_FORMAT } from "../lib/package/shards.ts";
import type { ObjectStore } from "../lib/store/objects.ts";
import { flag, positiveInt } from "./args.ts";
import { pathExists, removeTree } from "./absent.ts";
import { median, runTimed } from "./timing.ts";

const PYTHON = "/usr/bin/python3";
const WORK = new URL("./.work/", import.meta.url).pathname;
const LOADER = new URL("../examples/torch_dataset.py", import.meta.url).pathname;
const SIDE = new URL("./loader_torch.py", import.meta.url).pathname;
/** Bumped when the generated dataset changes, so that an older one is made again. */
const GENERATION = "loader-bench/1";
const SEED = 1300;
/** Bucket → latent shape: 256 floats each, so the reference is one N×256 array. */
const BUCKETS: Record<string, number[]> = {
  "128x32": [4, 4, 16],
  "32x128": [4, 16, 4],
  "64x64": [4, 8, 8],
};
const CLASSES = 1000;
const COLUMNS: ColumnOptions = {
  flip: false,
  labelFields: { category: "text", class: "integer", aesthetic: "number" },
  encodeOnly: true,
};

/** Image k's bucket: six in ten square, the rest wide or tall. */
function bucketOf(k: number): string {
  const r = (k * 2654435761 >>> 0) % 10;
  return r < 6 ? "64x64" : r < 8 ? "128x32" : "32x128";
}

/** Image k of `split`, as package's rows describe it. */
function rowOf(k: number, split: string, bucket: string): PackageRow {
  const [width, height] = bucket.split("x").map(Number);
  const cls = k % CLASSES;
  const conditioning: Conditioning = {
    original_size: [height * 4 + (k % 7), width * 4],
    crop_coords_top_left: [k % 7, 0],
    crop_box: [k % 7, 0, height * 4 + (k % 7), width * 4],
    target_size: [height, width],
  };
  return {
    id: `${split}/${String(k).padStart(7, "0")}`,
    split,
    path: `${split}/${k}.jpg`,
    bucket,
    image: { item: String(k), latent: "", initial: "", tensor: "", metrics: null, conditioning },
    flipped: null,
    labels: {
      category: split,
      class: cls,
      aesthetic: k % 97 === 0 ? null : ((k * 7919) % 1000) / 100,
    },
    caption: `a photo of class c${String(cls).padStart(4, "0")}, image ${k}`,
    meta: { url: `https://example.org/images/${k}.jpg`, width: width * 4, height: height * 4 },
  };
}

/** Writes the dataset and the reference (generation is not timed). */
async function generate(dir: string, count: number, shardSize: number): Promise<void> {
  const marker = join(dir, "generated.json");
  const want = JSON.stringify({ GENERATION, count, shardSize, SEED });
  if (await pathExists(marker) && await Deno.readTextFile(marker) === want) return;
  await removeTree(dir);
  const root = join(dir, "dataset");
  await Deno.mkdir(root, { recursive: true });
  console.log(`generating ${count.toLocaleString("en")} images (seed ${SEED}) in ${dir} …`);
  const started = performance.now();
  const next = seededRandom(SEED);
  const reference = await Deno.open(join(dir, "reference.f32"), { write: true, createNew: true });
  const writer = new IndexWriter({
    layout: "shards",
    flip: false,
    labelFields: COLUMNS.labelFields,
    classToIdx: Object.fromEntries(
      Array.from({ length: CLASSES }, (_, c) => [`c${String(c).padStart(4, "0")}`, c]),
    ),
  });
  const facts: Record<string, FileFacts> = {};
  const tensors = tensorNames((n) => n, false, true);
  const val = Math.round(count / 26);
  const splits: [string, number, number][] = [["train", val, count], ["val", 0, val]];
  for (const [split, from, to] of splits) {
    for (const bucket of Object.keys(BUCKETS).sort()) {
      const ks: number[] = [];
      for (let k = from; k < to; k++) if (bucketOf(k) === bucket) ks.push(k);
      for (let start = 0, n = 0; start < ks.length; start += shardSize, n++) {
        const rows = ks.slice(start, start + shardSize).map((k) => rowOf(k, split, bucket));
        const file = `${split}/shards/${bucket}-${String(n).padStart(5, "0")}.safetensors`;
        const latents = Float32Array.from({ length: rows.length * 256 }, () => next() * 4 - 2);
        const path = join(root, file);
        await Deno.mkdir(join(path, ".."), { recursive: true });
        facts[file] = { sha256: await writeShard(path, rows, latents, split, bucket) };
        facts[file].offsets = await safetensorsOffsets(path, tensors, rows.length);
        await writeAll(reference, new Uint8Array(latents.buffer));
        rows.forEach((row, i) => writer.add(row, { file, row: i, tensors }));
      }
    }
  }
  reference.close();
  const index = writer.finish({ files: facts, latentShapes: BUCKETS });
  for (const [name, bytes] of Object.entries(index.files)) {
    await Deno.mkdir(join(root, name, ".."), { recursive: true });
    await Deno.writeFile(join(root, name), bytes);
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`  ${Object.keys(facts).length} shards and index/ written in ${seconds} s`);
  await Deno.writeTextFile(marker, want);
}

/** One shard, as `writeShards` builds it, with the given latents. */
async function writeShard(
  path: string,
  rows: PackageRow[],
  latents: Float32Array,
  split: string,
  bucket: string,
): Promise<string> {
  // No latent is read from the store (`latents: false`), so no store is needed.
  const small = await rowColumns(null as unknown as ObjectStore, rows, COLUMNS, { latents: false });
  const { tensors, metadata } = asSafetensors(small);
  const lazy = Object.fromEntries(
    Object.entries(tensors).map(([name, t]) => [name, { ...t, data: () => t.data }]),
  );
  lazy.latents = { dtype: "F32", shape: [rows.length, ...BUCKETS[bucket]], data: () => latents };
  const { sha256 } = await writeSafetensorsFile(path, {
    tensors: lazy,
    metadata: { ...metadata, scaling_factor: "0.18215", format: SHARD_FORMAT, split, bucket },
  });
  return sha256;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
}

/** Reads every file under `path` once, so that its pages are cached. */
async function warm(path: string): Promise<void> {
  const info = await Deno.stat(path);
  if (info.isFile) {
    using file = await Deno.open(path);
    const buffer = new Uint8Array(1 << 20);
    while (await file.read(buffer) !== null) { /* only the page cache is wanted */ }
    return;
  }
  for await (const entry of Deno.readDir(path)) await warm(join(path, entry.name));
}

/** What one Python process measured. */
interface Measured {
  rss_import_mb: number;
  open_s: number;
  rss_open_mb: number;
  hwm_open_mb: number;
  first_s: number;
  second_s: number;
  checksum: number;
  sampler_s?: number;
  rss_end_mb: number;
  /** Growth of the RSS in pages of mapped files (the index's arrays), since the imports. */
  rss_file_end_mb: number;
}

type Side = "items" | "latents" | "reference";

async function measure(
  dir: string,
  side: Side,
  reads: number,
  seed: number,
  evict: string,
): Promise<Measured> {
  const root = join(dir, "dataset");
  if (evict === "latents") await warm(join(root, "index"));
  const r = await runTimed(PYTHON, [
    SIDE,
    LOADER,
    root,
    join(dir, "reference.f32"),
    side,
    String(reads),
    String(seed),
    evict,
  ], { env: { PYTHONDONTWRITEBYTECODE: "1" } });
  if (r.code !== 0) throw new Error(`${side} failed (${r.code}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

async function main(): Promise<void> {
  const count = positiveInt("count", "1300000");
  const shardSize = positiveInt("shard-size", "1000");
  const reads = Math.min(positiveInt("reads", "1000"), count);
  const rounds = positiveInt("rounds", "5");
  const evict = flag("evict", "none");
  if (!["latents", "all", "none"].includes(evict)) {
    throw new Error(`--evict: expected none, latents or all, found ${JSON.stringify(evict)}`);
  }
  const dir = join(WORK, `loader-${count}-${shardSize}`);
  await generate(dir, count, shardSize);
  // Without eviction every file starts in the page cache, on both sides.
  if (evict === "none") await warm(dir);
  console.log(`load average before: ${loadAverage()}`);
  const sides: Side[] = ["items", "latents", "reference"];
  const runs: Record<Side, Measured[]> = { items: [], latents: [], reference: [] };
  for (let round = 0; round < rounds; round++) {
    const seed = SEED + round;
    // Each round starts with another side, so that no side always follows the same one.
    const order = sides.map((_, k) => sides[(k + round) % sides.length]);
    for (const side of order) runs[side].push(await measure(dir, side, reads, seed, evict));
    const [items, latents, reference] = sides.map((side) => runs[side][round]);
    if (new Set([items.checksum, latents.checksum, reference.checksum]).size !== 1) {
      throw new Error(
        `round ${round + 1}: the loader and the map read different latents: ` +
          `${items.checksum}, ${latents.checksum} vs ${reference.checksum}`,
      );
    }
    const ms = (s: number) => (s * 1000).toFixed(1);
    console.log(
      `round ${round + 1}: open ${ms(items.open_s)} ms, +${
        (items.rss_open_mb - items.rss_import_mb).toFixed(1)
      } MB; reads (first / second pass, ms) items ${ms(items.first_s)} / ${ms(items.second_s)}, ` +
        `latents ${ms(latents.first_s)} / ${ms(latents.second_s)}, map ${ms(reference.first_s)} / ${
          ms(reference.second_s)
        }; load ${loadAverage()}`,
    );
  }
  report({ count, shardSize, reads, rounds, evict }, runs);
}

function report(
  setting: { count: number; shardSize: number; reads: number; rounds: number; evict: string },
  runs: Record<Side, Measured[]>,
): void {
  const m = (side: Side, pick: (r: Measured) => number) => median(runs[side].map(pick));
  const ms = (s: number) => `${(s * 1000).toFixed(1)} ms`;
  const { count, shardSize, reads, rounds, evict } = setting;
  console.log(
    `\n${count.toLocaleString("en")} images in shards of ${shardSize}, ${reads} random reads, ` +
      `median of ${rounds} rounds (evicted first: ${evict}; load now ${loadAverage()}):`,
  );
  const base = (r: Measured) => r.rss_import_mb;
  console.log(`  RSS after import torch, numpy: ${m("items", base).toFixed(0)} MB`);
  console.log(
    `  open LatentDataset: ${ms(m("items", (r) => r.open_s))}, RSS +${
      m("items", (r) => r.rss_open_mb - base(r)).toFixed(1)
    } MB, peak +${m("items", (r) => r.hwm_open_mb - base(r)).toFixed(1)} MB (goal ≤ 2 s, ≤ 300 MB)`,
  );
  for (
    const [pass, pick] of [["first", (r: Measured) => r.first_s], [
      "second",
      (r: Measured) => r.second_s,
    ]] as const
  ) {
    const reference = m("reference", pick);
    console.log(
      `  ${pass} pass: memory map ${ms(reference)}; ds[i] with every field ${
        ms(m("items", pick))
      } (${(m("items", pick) / reference).toFixed(2)}×); latents only ${ms(m("latents", pick))} (${
        (m("latents", pick) / reference).toFixed(2)
      }×) (goal ≤ 1.5×)`,
    );
  }
  console.log(
    `  BucketBatchSampler(ds, 256) and one epoch of batches: ${
      ms(m("items", (r) => r.sampler_s!))
    }; RSS at the end +${m("items", (r) => r.rss_end_mb - base(r)).toFixed(0)} MB, of which ${
      m("items", (r) => r.rss_file_end_mb).toFixed(0)
    } MB pages of the index's mapped arrays`,
  );
}

await main();

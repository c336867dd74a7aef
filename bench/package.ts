/**
 * Package benchmark: N generated latents (4×32×32 float32, each with an initial latent, metrics
 * and conditioning) read from the store and packaged as safetensors shards, side by side with
 * the same rows packaged as one `.npz` (the split layout) — time and peak RSS of each, in
 * separate processes, alternating. Then 1,000 random latents read through the PyTorch loader
 * (examples/torch_dataset.py) from the shards, against `numpy.load` of the npz.
 *
 * Run: `deno task bench package [--count 70000] [--shard-size 1000] [--reads 1000] [--rounds 1]
 * [--only shards]` (`--only shards` skips the npz reference and the read comparison, for a
 * machine without the memory the reference needs).
 *
 * The generated store is kept in bench/.work/package-<count>/ and its generation is not timed.
 * The npz reference holds every latent in memory twice (arrays, then the archive): at 70,000
 * images it needs about 5 GB.
 *
 * @module
 */
import { join } from "node:path";
import { encodeNpy } from "../lib/format/npy.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import type { Output } from "../lib/store/records.ts";
import { writeLayout } from "../lib/package/layout.ts";
import { packageRows } from "../lib/package/rows.ts";
import { runTimed } from "./timing.ts";
import { removeTree } from "./absent.ts";
import { seededRandom } from "../lib/base/random.ts";

const PYTHON = "/usr/bin/python3";
const WORK = new URL("./.work/", import.meta.url).pathname;
const LOADER = new URL("../examples/torch_dataset.py", import.meta.url).pathname;
const SEED = 70000;

function argValue(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(Deno.args[i + 1]);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`--${name}: expected a positive integer, found ${Deno.args[i + 1]}`);
  }
  return value;
}

/** What the generated store holds: one entry per image. */
interface Generated {
  ids: string[];
  latents: string[];
  initials: string[];
}

function peakRssKb(): number {
  return Number(/VmHWM:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))?.[1] ?? 0);
}

/** Seeded latents written straight into the store's layout (generation is not timed). */
async function generate(dir: string, count: number): Promise<Generated> {
  const ready = join(dir, "generated.json");
  const cached = await Deno.readTextFile(ready).then(JSON.parse, () => null) as Generated | null;
  if (cached && cached.ids.length === count) return cached;
  console.log(`generating ${count} latents (seed ${SEED}) in ${dir} …`);
  const store = new ObjectStore(join(dir, "cache"));
  const next = seededRandom(SEED);
  const put = async () => {
    const data = Float32Array.from({ length: 4 * 32 * 32 }, () => next() * 4 - 2);
    const bytes = encodeNpy({ dtype: "<f4", shape: [1, 4, 32, 32], data });
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes.slice()));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    const path = store.path(hex);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeFile(path, bytes);
    return hex;
  };
  const out: Generated = { ids: [], latents: [], initials: [] };
  for (let i = 0; i < count; i++) {
    out.ids.push(String(i).padStart(5, "0"));
    out.latents.push(await put());
    out.initials.push(await put());
  }
  await Deno.writeTextFile(ready, JSON.stringify(out));
  return out;
}

/** The child: packages the generated rows in one layout and reports time and peak RSS. */
async function child(layout: "shards" | "split", dir: string, shardSize: number): Promise<void> {
  const generated: Generated = JSON.parse(await Deno.readTextFile(join(dir, "generated.json")));
  const store = new ObjectStore(join(dir, "cache"));
  const optimized = new Map<string, Output>();
  const encoded = new Map<string, Output>();
  const preprocessed = new Map<string, Output>();
  generated.ids.forEach((id, i) => {
    optimized.set(id, {
      objects: { latent: generated.latents[i] },
      meta: {
        loss_initial: 0.02,
        loss_final: 0.01,
        psnr_initial: 24,
        psnr_final: 26,
        ssim_initial: 0.7,
        ssim_final: 0.8,
        steps: 100,
        stop: "max_steps",
        provider: "cpu",
      },
    });
    encoded.set(id, { objects: { latent: generated.initials[i] }, meta: {} });
    preprocessed.set(id, {
      objects: { tensor: generated.latents[i] },
      meta: {
        bucket: "256x256",
        original_size: [1024, 1024],
        crop_coords_top_left: [0, 0],
        crop_box: [0, 0, 1024, 1024],
        target_size: [256, 256],
      },
    });
  });
  const rows = packageRows({
    splits: { train: generated.ids },
    paths: Object.fromEntries(generated.ids.map((id) => [id, `${id}.png`])),
    labels: Object.fromEntries(generated.ids.map((id) => [id, { category: "train" }])),
    optimized,
    encoded,
    preprocessed,
    flip: false,
  });
  const started = performance.now();
  const written = await writeLayout(store, rows, {
    layout,
    formats: ["npz"],
    shardSize,
    bucketed: false,
    columns: { flip: false, labelFields: { category: "text" } },
    attributes: { scaling_factor: 0.18215 },
    shardContext: { scaling_factor: "0.18215" },
  });
  await store.syncDirs();
  const seconds = (performance.now() - started) / 1000;
  await Deno.writeTextFile(join(dir, `index-${layout}.json`), JSON.stringify(written.index));
  console.log(JSON.stringify({ seconds, files: written.files }));
  console.error(`peak-rss-kb ${peakRssKb()}`);
}

/** A directory a reader opens: the files linked from the store, and index.json. */
async function materialize(dir: string, name: string, files: Record<string, string>) {
  const root = join(dir, name);
  await removeTree(root);
  const store = new ObjectStore(join(dir, "cache"));
  for (const [file, digest] of Object.entries(files)) {
    const path = join(root, file);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.symlink(store.path(digest), path);
  }
  await Deno.copyFile(join(dir, `index-${name}.json`), join(root, "index.json"));
  return root;
}

const READER = `
import json, resource, sys, time, importlib.util
import numpy as np
spec = importlib.util.spec_from_file_location("torch_dataset", sys.argv[1])
td = importlib.util.module_from_spec(spec); spec.loader.exec_module(td)
shards, npz, reads, seed, which = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
out = {}
if which == "loader":
    t0 = time.perf_counter()
    ds = td.LatentDataset(shards, flip="none")
    t1 = time.perf_counter()
    idx = np.random.default_rng(seed).choice(len(ds), reads, replace=False)
    got = np.stack([ds[int(i)]["latents"].numpy() for i in idx])
    t2 = time.perf_counter()
    out = {"open": t1 - t0, "read": t2 - t1, "ids": [ds.images[int(i)]["id"] for i in idx[:5]], "sum": float(got.astype(np.float64).sum())}
else:
    t0 = time.perf_counter()
    d = np.load(npz)
    ids = d["ids"]
    idx = np.random.default_rng(seed).choice(len(ids), reads, replace=False)
    got = d["latents"][idx]
    t2 = time.perf_counter()
    out = {"open": 0.0, "read": t2 - t0, "ids": [str(ids[i]) for i in idx[:5]], "sum": float(got.astype(np.float64).sum())}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
`;

async function main(): Promise<void> {
  const count = argValue("count", 70_000);
  const shardSize = argValue("shard-size", 1000);
  const reads = Math.min(argValue("reads", 1000), count);
  const rounds = argValue("rounds", 1);
  const dir = join(WORK, `package-${count}`);
  await Deno.mkdir(dir, { recursive: true });
  await generate(dir, count);
  const results: Record<
    string,
    { seconds: number[]; rss: number[]; files: Record<string, string> }
  > = { shards: { seconds: [], rss: [], files: {} }, split: { seconds: [], rss: [], files: {} } };
  const store = new ObjectStore(join(dir, "cache"));
  const only = Deno.args.includes("--only") ? Deno.args[Deno.args.indexOf("--only") + 1] : null;
  if (only !== null && only !== "shards") {
    throw new Error(`--only: expected "shards", found ${JSON.stringify(only)}`);
  }
  for (let round = 0; round < rounds; round++) {
    const layouts = round % 2 === 0 ? ["shards", "split"] : ["split", "shards"];
    for (const layout of layouts.filter((l) => only === null || l === only)) {
      // Outputs of an earlier round would make every write a no-op: start without them.
      for (const d of Object.values(results[layout].files)) await store.remove(d);
      const r = await runTimed(Deno.execPath(), [
        "run",
        "--allow-all",
        new URL(import.meta.url).pathname,
        "--child",
        layout,
        "--dir",
        dir,
        "--shard-size",
        String(shardSize),
      ]);
      if (r.code !== 0) throw new Error(`${layout} child failed (${r.code}):\n${r.stderr}`);
      const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
      results[layout].seconds.push(out.seconds);
      results[layout].rss.push(r.peakRssMb!);
      results[layout].files = out.files;
      console.log(
        `round ${round + 1} ${layout.padEnd(6)} ${out.seconds.toFixed(2)} s, peak RSS ${
          r.peakRssMb!.toFixed(0)
        } MB`,
      );
    }
  }
  const best = (k: string) => Math.min(...results[k].seconds);
  const rss = (k: string) => Math.max(...results[k].rss);
  if (only === "shards") {
    for (const d of Object.values(results.shards.files)) await store.remove(d);
    console.log(
      `\npackage ${count.toLocaleString("en")} latents into shards of ${shardSize}: ${
        best("shards").toFixed(2)
      } s, peak RSS ${rss("shards").toFixed(0)} MB (goal ≤ 500 MB)`,
    );
    return;
  }
  const shardsRoot = await materialize(dir, "shards", results.shards.files);
  const npz = join(await materialize(dir, "split", results.split.files), "train", "latents.npz");
  const read: Record<
    string,
    { open: number; read: number; ids: string[]; sum: number; peak_rss_mb: number }
  > = {};
  for (const which of ["loader", "numpy"]) {
    const r = await runTimed(PYTHON, [
      "-c",
      READER,
      LOADER,
      shardsRoot,
      npz,
      String(reads),
      String(SEED),
      which,
    ]);
    if (r.code !== 0) throw new Error(`${which} reader failed (${r.code}):\n${r.stderr}`);
    read[which] = JSON.parse(r.stdout.trim());
  }
  // The next run starts from the inputs alone: outputs already stored would make its writes no-ops.
  for (const layout of ["shards", "split"]) {
    for (const d of Object.values(results[layout].files)) await store.remove(d);
    await Deno.remove(join(dir, layout), { recursive: true });
  }
  if (read.loader.ids.join() !== read.numpy.ids.join() || read.loader.sum !== read.numpy.sum) {
    throw new Error(
      `the loader and numpy read different latents: ${JSON.stringify(read.loader)} vs ${
        JSON.stringify(read.numpy)
      }`,
    );
  }
  console.log(
    `\npackage ${count.toLocaleString("en")} latents 4×32×32 (with initial latents, metrics, ` +
      `conditioning), best of ${rounds}:`,
  );
  console.log(
    `  shards of ${shardSize}: ${best("shards").toFixed(2)} s, peak RSS ${
      rss("shards").toFixed(0)
    } MB`,
  );
  console.log(
    `  one npz:          ${best("split").toFixed(2)} s, peak RSS ${rss("split").toFixed(0)} MB`,
  );
  console.log(
    `  ratio shards/npz: time ${(best("shards") / best("split")).toFixed(2)}× (goal ≤ 1.2×), ` +
      `shards RSS ${rss("shards") <= 500 ? "≤" : ">"} 500 MB`,
  );
  console.log(`read ${reads} random latents (same latents, checked):`);
  console.log(
    `  loader from shards: ${read.loader.read.toFixed(3)} s (+ ${
      read.loader.open.toFixed(3)
    } s to open index.json), peak RSS ${read.loader.peak_rss_mb.toFixed(0)} MB`,
  );
  console.log(
    `  numpy.load of the npz: ${read.numpy.read.toFixed(3)} s, peak RSS ${
      read.numpy.peak_rss_mb.toFixed(0)
    } MB`,
  );
  console.log(
    `  ratio loader/numpy: ${
      ((read.loader.read + read.loader.open) / read.numpy.read).toFixed(2)
    }×`,
  );
}

const childAt = Deno.args.indexOf("--child");
if (childAt >= 0) {
  const dir = Deno.args[Deno.args.indexOf("--dir") + 1];
  await child(Deno.args[childAt + 1] as "shards" | "split", dir, argValue("shard-size", 1000));
} else {
  await main();
}

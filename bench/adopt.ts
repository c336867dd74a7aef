/**
 * Adoption throughput: taking N files of a local copy into the store — read, MD5 and SHA-256
 * checked against the spec, copied in (zip entries streamed out of the archive and inflated),
 * each object fsynced and renamed, as fetch-images does — from a folder and from a zip,
 * against a shell pipeline doing the same work on the same bytes (`md5sum`, `sha256sum` and
 * `cp`, or `unzip` for the archive, then `sync --data` of every copy, so they are as durable as
 * the store's objects; also without that sync),
 * and against downloading the same files from the local mirror. All in one run, the source
 * files warm in the page cache for every contender. Also timed: the whole `run fetch-images`
 * task adopting the zip (process start, planning and records included).
 *
 *   deno task bench adopt [--count 10000] [--image-size 256] [--rounds 3] [--concurrency 64]
 *
 * Needs `unzip`, `md5sum`, `sha256sum` and `cp` on PATH.
 *
 * @module
 */

import { join } from "node:path";
// @ts-types="@types/yazl"
import yazl from "yazl";
import { createWriteStream } from "node:fs";
import { AdoptSources } from "../lib/dataset/adopt.ts";
import type { AdoptItem } from "../lib/dataset/adopt_check.ts";
import { downloadVerified } from "../lib/net/download.ts";
import { HashPool } from "../lib/net/hash_pool.ts";
import { HostGate } from "../lib/net/host_gate.ts";
import { ObjectStore } from "../lib/store/objects.ts";

function option(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(Deno.args[i + 1]);
  if (!Number.isFinite(n)) throw new Error(`--${name} expects a number`);
  return n;
}

const count = option("count", 10_000);
const imageSize = option("image-size", 256);
const rounds = option("rounds", 3);
// fetch-images runs `download.concurrency_per_host` × 4 = 64 actions at once by default.
const concurrency = option("concurrency", 64);

for (const tool of ["unzip", "md5sum", "sha256sum", "cp", "sync"]) {
  const found = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
    .output();
  if (!found.success) {
    console.error(`${tool} is missing from PATH (Debian: apt-get install unzip coreutils)`);
    Deno.exit(2);
  }
}

console.log(`starting the mirror: ${count} files of ${imageSize}×${imageSize} noise PNG …`);
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    new URL("../tests/fixtures/mirror_main.ts", import.meta.url).pathname,
    "--count",
    String(count),
    "--image-size",
    String(imageSize),
    "--thumbnail-size",
    "8",
    "--wild-width",
    "8",
    "--noise",
    "--json",
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
let first = "";
while (!first.includes("\n")) {
  const { done, value } = await lines.read();
  if (done) throw new Error("the mirror exited before printing its URLs");
  first += value;
}
const { specUrl } = JSON.parse(first.split("\n")[0]);
type Part = {
  file_url: string;
  file_path: string;
  file_size: number;
  file_md5: string;
  pixel_size: [number, number];
  pixel_md5: string;
};
const spec = await (await fetch(specUrl)).json() as Record<string, { image: Part }>;
const entries = Object.entries(spec).map(([id, r]) => ({ id, ...r.image }));
const items: AdoptItem[] = entries.map((e) => ({
  id: e.id,
  path: e.file_path,
  size: e.file_size,
  md5: e.file_md5,
  pixel_size: e.pixel_size,
  pixel_md5: e.pixel_md5,
}));
const totalBytes = entries.reduce((n, e) => n + e.file_size, 0);

const root = await Deno.makeTempDir({ prefix: "lf_bench_adopt_" });
const folder = join(root, "copy");
const zipPath = join(root, "kaggle.zip");

function loadAverage(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

async function pool<T>(list: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < list.length) await fn(list[next++]);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

async function shell(script: string): Promise<void> {
  const out = await new Deno.Command("bash", {
    args: ["-euo", "pipefail", "-c", script],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`shell failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** The library path fetch-images takes for an adopted file, over every item. */
/** fetch-images hashes on one worker thread, beside the copying on the main one. */
async function ours(source: string, workers: number): Promise<number> {
  const dir = join(root, "store");
  const store = new ObjectStore(dir);
  const hashPool = new HashPool({ workers });
  try {
    return await timed(async () => {
      const sources = await AdoptSources.open([source]);
      try {
        await pool(items, concurrency, async (item) => {
          const got = await sources.adopt(item, {
            tempPath: () => store.tempPath("adopt"),
            hashPool,
          });
          if (!got.adopted) throw new Error(`item ${item.id}: ${JSON.stringify(got.rejected)}`);
          await store.putFile(got.adopted.kept!, got.adopted.sha256);
        });
        await store.syncDirs();
      } finally {
        sources.close();
      }
    });
  } finally {
    hashPool.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function shellFolder(durable: boolean): Promise<number> {
  const dest = join(root, "shell");
  await Deno.mkdir(dest);
  try {
    return await timed(() =>
      shell(
        `cd '${folder}' && find . -type f -name '*.png' -print0 > '${root}/list' && ` +
          `xargs -0 md5sum < '${root}/list' > '${root}/md5.txt' && ` +
          `xargs -0 sha256sum < '${root}/list' > '${root}/sha256.txt' && ` +
          `cp -r images1024x1024 '${dest}/'` +
          (durable ? ` && cd '${dest}' && find . -type f -print0 | xargs -0 sync --data` : ""),
      )
    );
  } finally {
    await Deno.remove(dest, { recursive: true });
  }
}

/** The whole `fetch-images` task of the pipeline, adopting from `source` (process included). */
async function pipeline(source: string): Promise<number> {
  const dir = join(root, "project");
  await Deno.mkdir(dir, { recursive: true });
  const config = join(dir, "config.json");
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      dataset: { kind: "ffhq", spec: { url: specUrl }, adopt: [source] },
      model: {
        encoder: { path: "unused.onnx" },
        decoder: { path: "unused.onnx" },
        scaling_factor: 1,
      },
    }),
  );
  const run = async (task: string) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-kv",
        "--unstable-cron",
        new URL("../pipeline.ts", import.meta.url).pathname,
        "run",
        task,
        "--config",
        config,
        "--cache",
        join(dir, "cache"),
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  };
  try {
    await run("fetch-json");
    return await timed(() => run("fetch-images"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function shellZip(): Promise<number> {
  const dest = join(root, "shell");
  try {
    return await timed(() =>
      shell(
        `unzip -q '${zipPath}' -d '${dest}' && cd '${dest}' && ` +
          `find . -type f -print0 > '${root}/list' && ` +
          `xargs -0 md5sum < '${root}/list' > '${root}/md5.txt' && ` +
          `xargs -0 sha256sum < '${root}/list' > '${root}/sha256.txt' && ` +
          `xargs -0 sync --data < '${root}/list'`,
      )
    );
  } finally {
    await Deno.remove(dest, { recursive: true });
  }
}

async function download(): Promise<number> {
  const dir = join(root, "store");
  const store = new ObjectStore(dir);
  const gate = new HostGate({ perHost: concurrency });
  const hashPool = new HashPool();
  try {
    return await timed(async () => {
      await pool(entries, concurrency, async (e) => {
        const got = await downloadVerified({
          urls: [e.file_url],
          partialPath: join(dir, "partial", e.file_md5),
          expectedSize: e.file_size,
          expectedMd5: e.file_md5,
          hostGate: gate,
          hashPool,
        });
        await store.putFile(got.path, got.sha256);
      });
      await store.syncDirs();
    });
  } finally {
    hashPool.close();
    await Deno.remove(dir, { recursive: true });
  }
}

try {
  console.log(`writing the copies: ${folder} and ${zipPath} (deflated, flat names) …`);
  await pool(entries, 16, async (e) => {
    const bytes = new Uint8Array(await (await fetch(e.file_url)).arrayBuffer());
    const path = join(folder, e.file_path);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeFile(path, bytes);
  });
  const zip = new yazl.ZipFile();
  for (const e of entries) {
    zip.addFile(join(folder, e.file_path), e.file_path.slice(e.file_path.lastIndexOf("/") + 1));
  }
  zip.end();
  await new Promise<void>((resolve, reject) => {
    const out = createWriteStream(zipPath);
    out.on("close", () => resolve());
    out.on("error", reject);
    zip.outputStream.pipe(out);
  });
  console.log(
    `${entries.length} files, ${(totalBytes / 1e6).toFixed(0)} MB; zip ${
      ((await Deno.stat(zipPath)).size / 1e6).toFixed(0)
    } MB; ${concurrency} at a time; ${rounds} round(s), the order rotating\n`,
  );

  const sides: { name: string; label: string; run: () => Promise<number> }[] = [
    { name: "ours-folder", label: "latentforge adopt from the folder", run: () => ours(folder, 1) },
    {
      name: "shell-folder",
      label: "md5sum + sha256sum + cp + sync, same folder",
      run: () => shellFolder(true),
    },
    {
      name: "shell-folder-nosync",
      label: "md5sum + sha256sum + cp (no sync), same folder",
      run: () => shellFolder(false),
    },
    { name: "ours-zip", label: "latentforge adopt from the zip", run: () => ours(zipPath, 1) },
    { name: "shell-zip", label: "unzip + md5sum + sha256sum + sync, same zip", run: shellZip },
    {
      name: "pipeline-zip",
      label: "`run fetch-images` adopting the zip (whole task)",
      run: () => pipeline(zipPath),
    },
    { name: "download", label: "latentforge download from the local mirror", run: download },
  ];
  console.log(`load average before: ${loadAverage()}`);
  const results = new Map(sides.map((side) => [side.name, [] as number[]]));
  for (let r = 0; r < rounds; r++) {
    // The order rotates from round to round, so no side always runs on a warmer machine.
    for (let k = 0; k < sides.length; k++) {
      const side = sides[(k + r) % sides.length];
      results.get(side.name)!.push(await side.run());
    }
  }
  console.log(`load average after: ${loadAverage()}\n`);

  const median = (xs: number[]) => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  const mbps = (s: number) => totalBytes / 1e6 / s;
  console.log(`${"side".padEnd(52)} median s   MB/s  files/s   best s   rounds`);
  for (const side of sides) {
    const xs = results.get(side.name)!;
    const med = median(xs);
    console.log(
      `${side.label.padEnd(52)} ${med.toFixed(2).padStart(8)} ${mbps(med).toFixed(0).padStart(6)} ${
        (entries.length / med).toFixed(0).padStart(8)
      } ${Math.min(...xs).toFixed(2).padStart(8)}   ${xs.map((x) => x.toFixed(2)).join(", ")}`,
    );
  }
  const ratio = (ours: string, reference: string) =>
    (median(results.get(reference)!) / median(results.get(ours)!)).toFixed(2);
  console.log(
    `\nthroughput ratios (medians; higher is better): adopt folder / shell with sync ` +
      `${ratio("ours-folder", "shell-folder")}× (target ≥ 1.0×; ` +
      `${ratio("ours-folder", "shell-folder-nosync")}× against the shell without sync); ` +
      `adopt zip / unzip shell ${ratio("ours-zip", "shell-zip")}× (target ≥ 1.0×); ` +
      `adopt folder / download ${ratio("ours-folder", "download")}×; ` +
      `adopt zip / download ${ratio("ours-zip", "download")}×`,
  );
} finally {
  server.kill("SIGTERM");
  await lines.cancel();
  await server.status;
  await Deno.remove(root, { recursive: true });
}

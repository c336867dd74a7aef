/**
 * Adoption throughput: taking N files of a local copy into the store — read, MD5 and SHA-256
 * checked against the spec, copied in (zip entries streamed out of the archive and inflated),
 * each object fsynced and renamed, as fetch-images does — from a folder and from a zip,
 * against a shell pipeline doing the same work on the same bytes (`md5sum`, `sha256sum` and
 * `cp`, or `unzip` for the archive, then `sync` so its copies are as durable as the store's),
 * and against downloading the same files from the local mirror. All in one run, the source
 * files warm in the page cache for every contender.
 *
 *   deno task bench adopt [--count 10000] [--image-size 256] [--rounds 2] [--concurrency 16]
 *
 * Needs `unzip`, `md5sum`, `sha256sum` and `cp` on PATH.
 *
 * @module
 */

import { join } from "node:path";
// @ts-types="@types/yazl"
import yazl from "yazl";
import { createWriteStream } from "node:fs";
import { type AdoptItem, AdoptSources } from "../lib/dataset/adopt.ts";
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
const rounds = option("rounds", 2);
const concurrency = option("concurrency", 16);

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

async function shellFolder(): Promise<number> {
  const dest = join(root, "shell");
  await Deno.mkdir(dest);
  try {
    return await timed(() =>
      shell(
        `cd '${folder}' && find . -type f -name '*.png' -print0 > '${root}/list' && ` +
          `xargs -0 md5sum < '${root}/list' > '${root}/md5.txt' && ` +
          `xargs -0 sha256sum < '${root}/list' > '${root}/sha256.txt' && ` +
          `cp -r images1024x1024 '${dest}/' && sync -f '${dest}'`,
      )
    );
  } finally {
    await Deno.remove(dest, { recursive: true });
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
          `xargs -0 sha256sum < '${root}/list' > '${root}/sha256.txt' && sync -f .`,
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
    } MB; ${concurrency} at a time; ${rounds} round(s) each, best round reported\n`,
  );

  const results: Record<string, number[]> = {};
  const add = (name: string, s: number) => (results[name] ??= []).push(s);
  for (let r = 0; r < rounds; r++) {
    add("shell-folder", await shellFolder());
    add("ours-folder", await ours(folder, 2));
    add("ours-folder-1", await ours(folder, 1));
    add("shell-zip", await shellZip());
    add("ours-zip", await ours(zipPath, 2));
    add("download", await download());
  }

  const best = (name: string) => Math.min(...results[name]);
  const mbps = (s: number) => totalBytes / 1e6 / s;
  const rows: [string, string][] = [
    ["latentforge adopt from a folder (2 hashing threads)", "ours-folder"],
    ["latentforge adopt from a folder (1 hashing thread)", "ours-folder-1"],
    ["md5sum + sha256sum + cp + sync, same folder", "shell-folder"],
    ["latentforge adopt from a zip (deflated entries)", "ours-zip"],
    ["unzip + md5sum + sha256sum + sync, same zip", "shell-zip"],
    ["latentforge download from the local mirror", "download"],
  ];
  for (const [label, name] of rows) {
    const s = best(name);
    console.log(
      `${label.padEnd(54)} ${s.toFixed(2).padStart(7)} s  ${
        mbps(s).toFixed(0).padStart(5)
      } MB/s  ` +
        `${(entries.length / s).toFixed(0).padStart(5)} files/s   rounds: ${
          results[name].map((x) => x.toFixed(2)).join(", ")
        }`,
    );
  }
  console.log(
    `\nratios (throughput, higher is better): adopt folder / shell ${
      (best("shell-folder") / best("ours-folder")).toFixed(2)
    }× (goal ≥ 1.0×); adopt zip / shell ${
      (best("shell-zip") / best("ours-zip")).toFixed(2)
    }× (goal ≥ 1.0×); adopt folder / download ${
      (best("download") / best("ours-folder")).toFixed(2)
    }×; adopt zip / download ${(best("download") / best("ours-zip")).toFixed(2)}×`,
  );
} finally {
  server.kill("SIGTERM");
  await lines.cancel();
  await server.status;
  await Deno.remove(root, { recursive: true });
}

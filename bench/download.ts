/**
 * Download throughput over the same files from the local mirror, in the same run, every side
 * doing its work in full and said so in the table:
 *
 * - latentforge's verified downloader, as fetch-images uses it: MD5 and SHA-256 of every file
 *   computed while streaming (in a worker, or on the main thread), size and MD5 checked, the
 *   file fdatasync'ed, then renamed into place; per-host gate of `--concurrency`.
 * - `aria2c -i` with `checksum=md5` for every file (aria2c verifies it after the download),
 *   followed by `sync --data` of every file (fdatasync, as latentforge's): the same checks and
 *   durability, without the SHA-256 latentforge also computes. This is the reference of the
 *   headline ratio.
 * - `aria2c -i` with neither: the raw transfer, for scale.
 *
 * Each round runs every side once, in an order that rotates from round to round so that no
 * side always goes first; the table gives the median and the best of the same number of rounds
 * for every side. The mirror runs in its own process so it does not share the client's event
 * loop. Timings are whole operations on the client side (wall clock from the first request to
 * the last file in place, synced and verified).
 *
 *   deno run -A bench/download.ts [--count 2000] [--image-size 576] [--concurrency 16] [--rounds 3]
 *
 * @module
 */

import { downloadVerified } from "../lib/net/download.ts";
import { HashPool } from "../lib/net/hash_pool.ts";
import { HostGate } from "../lib/net/host_gate.ts";
import { pathExists } from "./absent.ts";

const ARIA2C = "/usr/bin/aria2c";

function option(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(Deno.args[i + 1]);
  if (!Number.isFinite(n)) throw new Error(`--${name} expects a number`);
  return n;
}

const count = option("count", 2000);
const imageSize = option("image-size", 576);
const concurrency = option("concurrency", 16);
const rounds = option("rounds", 3);

if (!(await pathExists(ARIA2C))) {
  console.error(`${ARIA2C} is missing: apt-get install -y --no-install-recommends aria2`);
  Deno.exit(2);
}

interface Entry {
  url: string;
  path: string;
  size: number;
  md5: string;
}

console.log(`starting the mirror: ${count} files of ${imageSize}×${imageSize} noise PNG …`);
const mirrorMain = new URL("../tests/fixtures/mirror_main.ts", import.meta.url).pathname;
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    mirrorMain,
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
const spec = await (await fetch(specUrl)).json() as Record<
  string,
  { image: { file_url: string; file_path: string; file_size: number; file_md5: string } }
>;
const entries: Entry[] = Object.values(spec).map((r) => ({
  url: r.image.file_url,
  path: r.image.file_path,
  size: r.image.file_size,
  md5: r.image.file_md5,
}));
const totalBytes = entries.reduce((n, e) => n + e.size, 0);
console.log(
  `${entries.length} files, ${(totalBytes / 1e6).toFixed(0)} MB in total, ` +
    `${concurrency} at a time; ${rounds} round(s) of every side, median and best reported\n`,
);

const root = await Deno.makeTempDir({ prefix: "lf_bench_dl_" });

async function ours(pooled: boolean): Promise<number> {
  const dir = `${root}/ours`;
  const gate = new HostGate({ perHost: concurrency });
  const hashPool = pooled ? new HashPool() : undefined;
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < entries.length) {
      const e = entries[next++];
      const got = await downloadVerified({
        urls: [e.url],
        partialPath: `${dir}/partial/${e.path}.part`,
        expectedSize: e.size,
        expectedMd5: e.md5,
        stallMs: 30_000,
        hostGate: gate,
        hashPool,
      });
      await Deno.mkdir(`${dir}/out/${e.path.slice(0, e.path.lastIndexOf("/"))}`, {
        recursive: true,
      });
      await Deno.rename(got.path, `${dir}/out/${e.path}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  hashPool?.close();
  const seconds = (performance.now() - t0) / 1000;
  await Deno.remove(dir, { recursive: true });
  return seconds;
}

async function aria2(verified: boolean): Promise<number> {
  const dir = `${root}/aria2`;
  const list =
    entries.map((e) => `${e.url}\n  out=${e.path}` + (verified ? `\n  checksum=md5=${e.md5}` : ""))
      .join("\n") + "\n";
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${root}/list.txt`, list);
  const t0 = performance.now();
  const out = await new Deno.Command(ARIA2C, {
    args: [
      "-i",
      `${root}/list.txt`,
      "-d",
      dir,
      "-j",
      String(concurrency),
      // aria2c's fastest settings for many small files found on this machine: no disk cache,
      // no control-file saving, one connection per file, no config file.
      "--file-allocation=none",
      "--disk-cache=0",
      "--auto-save-interval=0",
      "--split=1",
      "--max-connection-per-server=1",
      "--min-split-size=1M",
      "--no-conf=true",
      "--allow-overwrite=true",
      "--auto-file-renaming=false",
      "--console-log-level=error",
      "--summary-interval=0",
      "--download-result=hide",
      "-q",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`aria2c failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`);
  }
  if (verified) {
    // fdatasync of every file, as latentforge does before a file counts as downloaded.
    const synced = await new Deno.Command("sync", {
      args: ["--data", ...entries.map((e) => `${dir}/${e.path}`)],
      stderr: "piped",
    }).output();
    if (!synced.success) {
      throw new Error(`sync --data failed: ${new TextDecoder().decode(synced.stderr)}`);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  let files = 0;
  for (const e of entries) {
    if ((await Deno.stat(`${dir}/${e.path}`)).size === e.size) files++;
  }
  if (files !== entries.length) throw new Error(`aria2c left ${files} of ${entries.length} files`);
  await Deno.remove(dir, { recursive: true });
  return seconds;
}

/** The sides, in the table's order: label, what it does, how to run one round. */
const sides: { label: string; work: string; run: () => Promise<number> }[] = [
  {
    label: "latentforge, hashes in a worker",
    work: "MD5+SHA-256, size+MD5 checked, fdatasync",
    run: () => ours(true),
  },
  {
    label: "latentforge, hashes on the main thread",
    work: "MD5+SHA-256, size+MD5 checked, fdatasync",
    run: () => ours(false),
  },
  {
    label: "aria2c -i, checksum=md5, then sync --data",
    work: "MD5 checked, fdatasync",
    run: () => aria2(true),
  },
  { label: "aria2c -i", work: "no check, no sync", run: () => aria2(false) },
];
const results = sides.map(() => [] as number[]);
try {
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < sides.length; k++) {
      const i = (k + r) % sides.length;
      results[i].push(await sides[i].run());
    }
  }
} finally {
  server.kill("SIGTERM");
  await lines.cancel();
  await server.status;
  await Deno.remove(root, { recursive: true });
}

const mbps = (s: number) => totalBytes / 1e6 / s;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
console.log(
  `${"side".padEnd(42)} ${"work per file".padEnd(42)} median s  MB/s   best s  MB/s   rounds`,
);
for (const [i, side] of sides.entries()) {
  const med = median(results[i]), best = Math.min(...results[i]);
  console.log(
    `${side.label.padEnd(42)} ${side.work.padEnd(42)} ${med.toFixed(2).padStart(8)} ${
      mbps(med).toFixed(0).padStart(5)
    } ${best.toFixed(2).padStart(8)} ${mbps(best).toFixed(0).padStart(5)}   ${
      results[i].map((x) => x.toFixed(2)).join(", ")
    }`,
  );
}
const ratio = (i: number) => median(results[i]) / median(results[0]);
console.log(
  `\nthroughput ratio latentforge / aria2c with MD5 check and fdatasync (medians): ` +
    `${ratio(2).toFixed(2)}× (target ≥ 0.8×); against aria2c without either: ` +
    `${ratio(3).toFixed(2)}×`,
);

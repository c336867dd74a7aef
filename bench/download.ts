/**
 * Download throughput: latentforge's verified downloader (MD5 + SHA-256 of every file, per-host
 * gate, atomic partial files) against `aria2c -i` over the same files from the local mirror, in
 * the same run. The mirror runs in its own process so it does not share the client's event loop.
 * Every file is fsynced and verified (size + MD5) before it counts, as in the pipeline.
 *
 *   deno run -A bench/download.ts [--count 2000] [--image-size 576] [--concurrency 16] [--rounds 2]
 *
 * @module
 */

import { downloadVerified } from "../lib/net/download.ts";
import { HashPool } from "../lib/net/hash_pool.ts";
import { HostGate } from "../lib/net/host_gate.ts";

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

try {
  Deno.statSync(ARIA2C);
} catch {
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
    `${concurrency} at a time; ${rounds} round(s) each, best round reported\n`,
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

async function aria2(withChecksums: boolean): Promise<number> {
  const dir = `${root}/aria2`;
  const list =
    entries.map((e) =>
      `${e.url}\n  out=${e.path}` + (withChecksums ? `\n  checksum=md5=${e.md5}` : "")
    ).join("\n") + "\n";
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
  const seconds = (performance.now() - t0) / 1000;
  if (!out.success) {
    throw new Error(`aria2c failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`);
  }
  let files = 0;
  for (const e of entries) {
    if ((await Deno.stat(`${dir}/${e.path}`)).size === e.size) files++;
  }
  if (files !== entries.length) throw new Error(`aria2c left ${files} of ${entries.length} files`);
  await Deno.remove(dir, { recursive: true });
  return seconds;
}

const results: Record<string, number[]> = {
  ours: [],
  "ours-main-thread": [],
  aria2c: [],
  "aria2c+md5": [],
};
try {
  for (let r = 0; r < rounds; r++) {
    results["aria2c"].push(await aria2(false));
    results.ours.push(await ours(true));
    results["ours-main-thread"].push(await ours(false));
    // aria2c verifying MD5s is much slower; one round is enough to show it.
    if (r === 0) results["aria2c+md5"].push(await aria2(true));
  }
} finally {
  server.kill("SIGTERM");
  await lines.cancel();
  await server.status;
  await Deno.remove(root, { recursive: true });
}

const mbps = (s: number) => totalBytes / 1e6 / s;
const best = (name: string) => Math.min(...results[name]);
const rows: Array<[string, string]> = [
  ["latentforge downloadVerified, HashPool (MD5+SHA-256)", "ours"],
  ["latentforge downloadVerified, hashing on main thread", "ours-main-thread"],
  ["aria2c -i (no verification)", "aria2c"],
  ["aria2c -i with checksum=md5", "aria2c+md5"],
];
for (const [label, name] of rows) {
  const s = best(name);
  console.log(
    `${label.padEnd(52)} ${s.toFixed(2).padStart(7)} s  ${mbps(s).toFixed(0).padStart(5)} MB/s  ` +
      `${(entries.length / s).toFixed(0).padStart(4)} files/s   rounds: ${
        results[name].map((x) => x.toFixed(2)).join(", ")
      }`,
  );
}
console.log(
  `\nratio ours / aria2c: ${(best("aria2c") / best("ours")).toFixed(2)}× ` +
    `(target ≥ 0.8×); ours / aria2c+md5: ${(best("aria2c+md5") / best("ours")).toFixed(2)}×`,
);

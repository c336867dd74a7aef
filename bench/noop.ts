/**
 * `deno task bench noop`: an eight-stage pipeline over 70,000 items, everything cached, timed
 * against a bare Deno KV scan of the same action records in the same run; plus the throughput
 * of trivial uncached actions and peak RSS.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { median, runTimed, table } from "./timing.ts";
import { pathExists } from "./absent.ts";

const items = Number(Deno.args[0] ?? 70_000);
const repeats = Number(Deno.args[1] ?? 5);
const here = fileURLToPath(new URL(".", import.meta.url));
const work = join(here, ".work", "noop");
await Deno.mkdir(work, { recursive: true });
const cache = join(work, `cache-${items}`);
const config = join(work, `bench-${items}.json`);
await Deno.writeTextFile(config, JSON.stringify({ items }));
const pipeline = [
  "run",
  "--allow-all",
  "--unstable-kv",
  join(here, "fixtures/noop_pipeline.ts"),
  "run",
  "--config",
  config,
  "--cache",
  cache,
];

const fresh = !(await pathExists(join(cache, "records.sqlite3")));
if (fresh) {
  console.log(`populating: ${items} items × 6 per-item stages (uncached)…`);
  const first = await runTimed(Deno.execPath(), pipeline);
  if (first.code !== 0) throw new Error(`populating run failed:\n${first.stderr}`);
  const actions = items * 6 + 2;
  console.log(
    `uncached: ${actions} trivial actions in ${first.seconds.toFixed(2)} s = ` +
      `${Math.round(actions / first.seconds)} actions/s (whole process; target ≥ 5,000/s), ` +
      `peak RSS ${first.peakRssMb?.toFixed(0)} MB`,
  );
}

const runs: number[] = [];
const scans: number[] = [];
const rss: number[] = [];
for (let i = 0; i < repeats; i++) {
  const scan = await runTimed(Deno.execPath(), [
    "run",
    "--allow-all",
    "--unstable-kv",
    join(here, "fixtures/kv_scan.ts"),
    join(cache, "records.sqlite3"),
  ]);
  if (scan.code !== 0) throw new Error(scan.stderr);
  scans.push(scan.seconds);
  const run = await runTimed(Deno.execPath(), pipeline);
  if (run.code !== 0) throw new Error(`no-op run failed:\n${run.stderr}`);
  if (!/summary ok: 1\/1 \(0 ran, 1 cached\)/.test(run.stderr)) {
    throw new Error(`the no-op run recomputed something:\n${run.stderr}`);
  }
  runs.push(run.seconds);
  if (run.peakRssMb) rss.push(run.peakRssMb);
}
const scanRecords = JSON.parse(
  (await runTimed(Deno.execPath(), [
    "run",
    "--allow-all",
    "--unstable-kv",
    join(here, "fixtures/kv_scan.ts"),
    join(cache, "records.sqlite3"),
  ])).stdout,
).records;
table(
  [
    [`no-op run (${items} items, 8 stages)`, median(runs), Math.min(...runs)],
    [`bare KV list of ${scanRecords} action records`, median(scans), Math.min(...scans)],
  ],
  repeats,
);
console.log(
  `ratio run / scan (median): ${(median(runs) / median(scans)).toFixed(2)}× (target ≤ 2×); ` +
    `peak RSS of the no-op run: ${median(rss).toFixed(0)} MB`,
);

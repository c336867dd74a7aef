/**
 * `deno task bench plan [items] [repeats]`: planning a cached pipeline of 70,000 items × 8 tasks
 * whose stages 3 and 5 read 16 MB model files — `run --dry-run`, `status` and `explain` of every
 * item of the last per-item stage — each timed against a bare Deno KV scan of the same action
 * records in the same run; plus a plan after touching a model file (its one re-hash).
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
const work = join(here, ".work", "plan");
await Deno.mkdir(work, { recursive: true });
const cache = join(work, `cache-${items}`);
const config = join(work, `bench-${items}.json`);
const models = { a: join(work, "model-a.bin"), b: join(work, "model-b.bin") };
for (const [name, path] of Object.entries(models)) {
  if (await pathExists(path)) continue;
  // Seeded bytes, so the files and the cache stay valid between invocations.
  const bytes = new Uint8Array(16 << 20);
  let x = name.charCodeAt(0);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  await Deno.writeFile(path, bytes);
}
await Deno.writeTextFile(
  config,
  JSON.stringify({ items, models: { a: { path: models.a }, b: { path: models.b } } }),
);
const cli = (args: string[]) => [
  "run",
  "--allow-all",
  "--unstable-kv",
  join(here, "fixtures/noop_pipeline.ts"),
  ...args,
  "--config",
  config,
  "--cache",
  cache,
];
const deno = Deno.execPath();
const scanArgs = [
  "run",
  "--allow-all",
  "--unstable-kv",
  join(here, "fixtures/kv_scan.ts"),
  join(cache, "records.sqlite3"),
];

if (!(await pathExists(join(cache, "records.sqlite3")))) {
  console.log(`populating: ${items} items × 8 tasks (uncached, models hashed once)…`);
  const first = await runTimed(deno, cli(["run"]));
  if (first.code !== 0) throw new Error(`populating run failed:\n${first.stderr}`);
  console.log(`populated in ${first.seconds.toFixed(1)} s`);
}

const commands: [string, string[]][] = [
  ["run --dry-run", ["run", "--dry-run", "--json"]],
  ["status", ["status", "--json"]],
  ["explain stage6 (every item)", ["explain", "stage6", "--json"]],
];
const times = new Map<string, number[]>(commands.map(([label]) => [label, []]));
const scans: number[] = [];
for (let i = 0; i < repeats; i++) {
  const scan = await runTimed(deno, scanArgs);
  if (scan.code !== 0) throw new Error(scan.stderr);
  scans.push(scan.seconds);
  for (const [label, args] of commands) {
    const r = await runTimed(deno, cli(args));
    if (r.code !== 0) throw new Error(`${label} failed:\n${r.stderr}`);
    if (label === "run --dry-run" && r.stdout.includes('"event":"plan"')) {
      throw new Error(`the plan of a cached pipeline predicts work:\n${r.stdout.slice(0, 2000)}`);
    }
    if (label === "status" && JSON.parse(r.stdout).tasks.some((t: { stale: number }) => t.stale)) {
      throw new Error(`status of a cached pipeline shows stale items:\n${r.stdout}`);
    }
    times.get(label)!.push(r.seconds);
  }
}
// A touched but unchanged model costs one re-hash, then the plan is as before.
const now = new Date();
await Deno.utime(models.a, now, now);
const touched = await runTimed(deno, cli(["run", "--dry-run", "--json"]));
if (touched.code !== 0 || touched.stdout.includes('"event":"plan"')) {
  throw new Error(`the plan after touching a model is wrong:\n${touched.stderr}`);
}
const records = JSON.parse((await runTimed(deno, scanArgs)).stdout).records;
table(
  [
    ...commands.map(([label]): [string, number, number] => [
      `${label} (${items} items, 8 tasks)`,
      median(times.get(label)!),
      Math.min(...times.get(label)!),
    ]),
    [`bare KV list of ${records} action records`, median(scans), Math.min(...scans)],
  ],
  repeats,
);
for (const [label] of commands) {
  console.log(
    `ratio ${label} / scan (median): ${(median(times.get(label)!) / median(scans)).toFixed(2)}× ` +
      `(target ≤ 2×)`,
  );
}
console.log(
  `plan after touching a 16 MB model (one re-hash): ${touched.seconds.toFixed(3)} s, ` +
    `${(touched.seconds / median(scans)).toFixed(2)}× the scan`,
);

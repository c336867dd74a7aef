/**
 * `deno task bench slurm-scale [items] [array tasks]`: a wave of 1.3 M actions on Slurm, in
 * the coordinator's memory bound. bench noop's eight-task pipeline is run locally first (it
 * populates the cache, or reruns what a change to its own module invalidated);
 * then `run --force stage6 --executor slurm` plans every item, finds stage6 to run for all of
 * them (as an encode-only dataset finds encode), spools the actions, splits them into one
 * shard object per array task, submits the array, and imports the results the workers
 * announce. The same `run --force stage6` locally is the reference for the coordinator's peak
 * RSS. Reported: the coordinator's peak RSS (target ≤ 1 GB at 1.3 M), the time until the array
 * is submitted, the wave's throughput, and the workers' peak RSS (from their Slurm logs).
 * Defaults: 1,300,000 items, 64 array tasks, on the cluster `sinfo` answers for or one of its
 * own (see cluster.ts). The populated cache stays in bench/.work/slurm-scale for later rounds.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pathExists } from "./absent.ts";
import { benchCluster } from "./cluster.ts";
import { runTimed } from "./timing.ts";

const items = Number(Deno.args[0] ?? 1_300_000);
const arrayTasks = Number(Deno.args[1] ?? 64);
const here = fileURLToPath(new URL(".", import.meta.url));
const work = join(here, ".work", "slurm-scale");
await Deno.mkdir(work, { recursive: true });
const cache = join(work, `cache-${items}`);
const local = join(work, `local-${items}.json`);
const slurm = join(work, `slurm-${items}.json`);
await Deno.writeTextFile(local, JSON.stringify({ items }));
await Deno.writeTextFile(
  slurm,
  JSON.stringify({
    items,
    executor: {
      kind: "slurm",
      tasks: ["stage6"],
      array_tasks: arrayTasks,
      poll_s: 5,
      // One node: the cache is this machine's disk.
      slurm: { probe_shared: false, cpus_per_task: 1 },
    },
  }),
);
const pipeline = (config: string, ...args: string[]) => [
  "run",
  "--allow-all",
  "--unstable-kv",
  "--unstable-cron",
  join(here, "fixtures/noop_pipeline.ts"),
  "run",
  "--config",
  config,
  "--cache",
  cache,
  ...args,
];

const cluster = await benchCluster();
try {
  // A change to the pipeline's own module (not the engine's) reruns its stages here first.
  const fresh = !(await pathExists(join(cache, "records.sqlite3")));
  console.log(`${fresh ? "populating" : "bringing up to date"}: ${items} items, locally…`);
  const first = await runTimed(Deno.execPath(), pipeline(local));
  if (first.code !== 0) throw new Error(`populating run failed:\n${first.stderr}`);
  console.log(`  ${first.seconds.toFixed(1)} s, peak RSS ${first.peakRssMb?.toFixed(0)} MB`);

  console.log(`run --force stage6 locally (the reference)…`);
  const ref = await runTimed(Deno.execPath(), pipeline(local, "--force", "stage6"));
  if (ref.code !== 0) throw new Error(`local run failed:\n${ref.stderr}`);
  ranAll(ref.stderr);
  console.log(`  ${ref.seconds.toFixed(1)} s, peak RSS ${ref.peakRssMb?.toFixed(0)} MB`);

  console.log(`run --force stage6 on Slurm, ${arrayTasks} array tasks…`);
  const remote = await watchedRun(pipeline(slurm, "--force", "stage6"));
  ranAll(remote.stderr);
  const jobId = /submitted stage6 as Slurm job (\d+)/.exec(remote.stderr)?.[1];
  const workers = await workerPeaks(join(cache, "logs", "slurm"), jobId!);
  const waveSeconds = remote.endedAt - remote.submittedAt;
  console.log(
    `
${items} items × 8 tasks, stage6 forced (${items} actions), this machine's 1-node cluster:
  coordinator on Slurm: ${remote.seconds.toFixed(1)} s in all, array submitted after ${
      remote.submittedAt.toFixed(1)
    } s (planning every item, spooling and splitting the wave), wave ${
      waveSeconds.toFixed(1)
    } s = ${
      Math.round(items / waveSeconds)
    } actions/s on ${arrayTasks} array tasks, ${cluster.cpus} CPUs
  coordinator peak RSS: ${remote.peakRssMb.toFixed(0)} MB on Slurm against ${
      ref.peakRssMb?.toFixed(0)
    } MB running the same actions locally (${(remote.peakRssMb / ref.peakRssMb!).toFixed(2)}×; ` +
      `target ≤ 1,024 MB)
  workers' peak RSS: ${Math.max(...workers).toFixed(0)} MB (largest of ${workers.length})
  local reference: ${ref.seconds.toFixed(1)} s`,
  );
} finally {
  await cluster.stop();
}

/** Checks a run ran stage6 for every item. */
function ranAll(stderr: string): void {
  if (!new RegExp(`stage6 ok: ${items}/${items} \\(${items} ran, 0 cached\\)`).test(stderr)) {
    throw new Error(`stage6 did not run every item:\n${stderr.slice(-3000)}`);
  }
}

/** Runs the coordinator, noting when the array was submitted and when stage6 ended. */
async function watchedRun(args: string[]) {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" })
    .spawn();
  let stderr = "";
  let submittedAt = NaN;
  let endedAt = NaN;
  const since = () => (performance.now() - started) / 1000;
  for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
    stderr += text;
    if (Number.isNaN(submittedAt) && /submitted stage6 as Slurm job/.test(stderr)) {
      submittedAt = since();
    }
    if (Number.isNaN(endedAt) && /stage6 ok:/.test(stderr)) endedAt = since();
  }
  const { code } = await child.status;
  const seconds = since();
  if (code !== 0) throw new Error(`Slurm run failed:\n${stderr.slice(-3000)}`);
  const kb = Number(/peak-rss-kb (\d+)/.exec(stderr)?.[1]);
  return { stderr, seconds, submittedAt, endedAt, peakRssMb: kb / 1024 };
}

/** The peak RSS (MB) each array task of the job printed in its Slurm log. */
async function workerPeaks(dir: string, job: string): Promise<number[]> {
  const peaks: number[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.startsWith(`${job}_`)) continue;
    const kb = /peak-rss-kb (\d+)/.exec(await Deno.readTextFile(join(dir, e.name)))?.[1];
    if (kb) peaks.push(Number(kb) / 1024);
  }
  return peaks;
}

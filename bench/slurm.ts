/**
 * `deno task bench slurm [items] [rounds] [array tasks…]`: the overhead of running `optimize` as
 * a Slurm job array (the shared-path probe job, submission, polling, worker start-up, importing
 * results) against running the same optimize work locally, on this machine's single-node
 * cluster.
 *
 * The upstream stages (fetch … encode) run once into a base cache; each variant then runs
 * `run optimize` on its own copy of that cache, so only optimize differs between them. Every
 * process runs onnxruntime with one thread and each array task gets one CPU, so the local run
 * and a one-task Slurm run do the same work on one core: their difference is the Slurm path's
 * overhead. N array tasks run min(N, CPUs) at a time; their overhead is counted in core-seconds,
 * wall time × min(N, CPUs) − the local run's wall time, and divided by N. Defaults: the demo's
 * 64 images, 3 rounds, 1, 2 and 4 array tasks. Runs on the cluster `sinfo` answers for (as
 * `SLURM_CONF` or the system's configuration says); where none answers, it starts a
 * single-node cluster of its own as the tests do (root, with slurm-wlm and munge installed).
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { median, runTimed, type Timed } from "./timing.ts";
import { removeTree } from "./absent.ts";
import { benchCluster } from "./cluster.ts";
import { startMirror } from "../tests/fixtures/mirror.ts";
import { parse } from "../tests/fixtures/project.ts";
import { writeDemoVae } from "../tests/fixtures/vae.ts";

const items = Number(Deno.args[0] ?? 64);
const rounds = Number(Deno.args[1] ?? 3);
const arrayTasks = Deno.args.length > 2 ? Deno.args.slice(2).map(Number) : [1, 2, 4];
const repo = fileURLToPath(new URL("../", import.meta.url));

const cluster = await benchCluster();
const cpuCount = cluster.cpus;

interface Variant {
  label: string;
  /** Array tasks; 0 for the local run. */
  n: number;
  config: string;
  args: string[];
}

const work = await Deno.makeTempDir({ prefix: "latentforge-bench-slurm-" });
const mirror = await startMirror({ count: items, imageSize: 256, seed: 1 });
try {
  const vae = await writeDemoVae(join(work, "vae"));
  const demo = JSON.parse(await Deno.readTextFile(join(repo, "config/demo.json")));
  // One onnxruntime thread per process: the same work per core in every variant.
  const writeConfig = async (name: string, executor: object = {}) => {
    const path = join(work, `${name}.json`);
    const config = {
      ...demo,
      dataset: { ...demo.dataset, spec: { url: mirror.specUrl } },
      labels: { ...demo.labels, source: { url: mirror.labelsUrl } },
      model: {
        ...demo.model,
        encoder: { path: vae.encoder },
        decoder: { path: vae.decoder },
        threads: 1,
      },
      package: { ...demo.package, out_dir: join(work, "out") },
      executor: { tasks: ["optimize"], poll_s: 0.5, ...executor },
    };
    await Deno.writeTextFile(path, JSON.stringify(config, null, 1));
    return path;
  };
  const pipeline = (config: string, cache: string, ...args: string[]) =>
    runTimed(Deno.execPath(), [
      "run",
      "--quiet",
      "--allow-all",
      "--unstable-kv",
      "--unstable-cron",
      join(repo, "pipeline.ts"),
      "run",
      ...args,
      "--json",
      "--config",
      config,
      "--cache",
      cache,
    ], { cwd: work });
  const check = (label: string, r: Timed) => {
    const events = parse(r.code, new TextEncoder().encode(r.stdout), new Uint8Array()).events;
    const ran = events
      .filter((e) => e.event === "item" && e.task === "optimize" && e.status === "ran").length;
    if (r.code !== 0 || ran !== items) {
      const logs = events.filter((e) => e.event === "log" || e.status === "failed")
        .map((e) => JSON.stringify(e)).join("\n");
      throw new Error(
        `${label}: exit code ${r.code}, ${ran} of ${items} items optimized\n${logs}\n${r.stderr}`,
      );
    }
  };

  const base = join(work, "base");
  console.log(`upstream stages for ${items} images (fetch … encode), once…`);
  const upstream = await pipeline(await writeConfig("local"), base, "encode");
  if (upstream.code !== 0) throw new Error(`upstream run failed:\n${upstream.stderr}`);
  console.log(`  ${upstream.seconds.toFixed(1)} s`);

  const copy = async (name: string) => {
    const dir = join(work, name);
    await removeTree(dir);
    const cp = await new Deno.Command("cp", { args: ["-a", base, dir] }).output();
    if (cp.code !== 0) throw new Error(new TextDecoder().decode(cp.stderr));
    return dir;
  };

  const variants: Variant[] = [
    { label: "local", n: 0, config: await writeConfig("local"), args: [] },
  ];
  const slurmRuns = [
    ...arrayTasks.map((n) => ({ n, probe: true })),
    { n: arrayTasks[arrayTasks.length - 1], probe: false },
  ];
  for (const { n, probe } of slurmRuns) {
    variants.push({
      label: `slurm, ${n} array task${n > 1 ? "s" : ""}${probe ? "" : ", probe_shared off"}`,
      n,
      config: await writeConfig(`slurm-${n}-${probe}`, {
        array_tasks: n,
        slurm: { probe_shared: probe, cpus_per_task: 1 },
      }),
      args: ["--executor", "slurm"],
    });
  }

  // Rounds interleave the variants, so a machine that gets busier slows all of them alike.
  const times = variants.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    for (const [i, v] of variants.entries()) {
      const r = await pipeline(v.config, await copy(`cache-${i}`), "optimize", ...v.args);
      check(v.label, r);
      times[i].push(r.seconds);
      console.log(`round ${round + 1}, ${v.label}: ${r.seconds.toFixed(2)} s`);
      if (v.n === 0) continue;
      const jobs = [...r.stdout.matchAll(/submitted optimize as Slurm job (\d+)/g)];
      if (jobs.length === 0) throw new Error(`${v.label}: no Slurm job was submitted\n${r.stdout}`);
      for (const [, jobId] of jobs) console.log(`  job ${jobId}: ${await taskTimes(jobId)}`);
    }
  }

  const local = median(times[0]);
  const width = Math.max(...variants.map((v) => v.label.length));
  console.log(
    `\nrun optimize, ${items} images of the demo (128 px, ≤ 60 Adam steps, batch 8, one ` +
      `thread per process), wall time of the whole process, median of ${rounds} runs:`,
  );
  console.log(
    `${"".padEnd(width)}  wall s   × local   overhead core-s   per array task`,
  );
  for (const [i, v] of variants.entries()) {
    const seconds = median(times[i]);
    const over = seconds * Math.min(v.n, cpuCount) - local;
    console.log(
      `${v.label.padEnd(width)}  ${seconds.toFixed(2).padStart(6)}  ${
        v.n ? (seconds / local).toFixed(2).padStart(8) : "".padStart(8)
      }  ${v.n ? over.toFixed(2).padStart(16) : "".padStart(16)}  ${
        v.n ? (over / v.n).toFixed(2).padStart(14) : ""
      }`,
    );
  }
} finally {
  await mirror.close();
  await removeTree(work);
  await cluster.stop();
}

/**
 * When each array task of a job started and how long it ran, from `scontrol show job` (whole
 * seconds; the controller keeps finished tasks for MinJobAge).
 */
async function taskTimes(jobId: string): Promise<string> {
  const out = await new Deno.Command("scontrol", { args: ["show", "job", "-o", jobId] }).output();
  if (out.code !== 0) return `scontrol show job failed: ${new TextDecoder().decode(out.stderr)}`;
  const field = (record: string, key: string) =>
    new RegExp(`(?:^|\\s)${key}=(\\S*)`).exec(record)?.[1];
  const seconds = (text?: string) => text ? Date.parse(text) / 1000 : NaN;
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.trim())
    .map((record) => {
      const submit = seconds(field(record, "SubmitTime"));
      const start = seconds(field(record, "StartTime"));
      const end = seconds(field(record, "EndTime"));
      return `task ${field(record, "ArrayTaskId")} started +${start - submit} s, ran ${
        end - start
      } s`;
    }).join("; ");
}

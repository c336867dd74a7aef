/**
 * Fault soak: the acquisition stages (`run verify-sizes`) over N items from the local mirror with
 * a share of the file requests faulted (every kind the mirror injects), beside a fault-free run
 * of the same items, each with a fresh cache. The pipeline runs as a subprocess, as a user runs
 * it; the mirror serves from this process and counts requests and injected faults.
 *
 * Checks that every item completes and that no wrong file is accepted (every stored image is
 * re-hashed against the spec's MD5), then prints the faults and retries per kind and the
 * throughput of both runs.
 *
 *   deno task bench soak [--count 5000] [--rate 0.3] [--concurrency 32] [--image-size 48]
 *                        [--limit-s 900] [--kinds truncated,reset,…]
 *
 * A run that has not finished after `--limit-s` seconds is stopped; the soak then reports how
 * many items it had completed and fails. `--kinds` limits the faults to the kinds named.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ALL_FAULTS, type FaultKind, type Mirror, startMirror } from "../tests/fixtures/mirror.ts";
import { PipelineProject } from "../tests/fixtures/pipeline_project.ts";
import { parse } from "../tests/fixtures/project.ts";
import { type ActionRecord, openRecords } from "../lib/store/records.ts";

function option(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(Deno.args[i + 1]);
  if (!Number.isFinite(n)) throw new Error(`--${name} expects a number, found ${Deno.args[i + 1]}`);
  return n;
}

const count = option("count", 5000);
const rate = option("rate", 0.3);
const concurrency = option("concurrency", 32);
const imageSize = option("image-size", 48);
const limitS = option("limit-s", 900);
const kindsArg = Deno.args.indexOf("--kinds");
const kinds: FaultKind[] = kindsArg < 0
  ? [...ALL_FAULTS]
  : Deno.args[kindsArg + 1].split(",").map((k) => {
    if (!(ALL_FAULTS as readonly string[]).includes(k)) {
      throw new Error(`--kinds: expected some of ${ALL_FAULTS.join(",")}, found ${k}`);
    }
    return k as FaultKind;
  });

/** Thrown when the soak finds a run that did not complete or a file that is wrong. */
class SoakError extends Error {
  override readonly name = "SoakError";
}

/** The model section is required by the schema; these runs stop before any model is read. */
const NO_MODEL = {
  encoder: { path: "unused.onnx" },
  decoder: { path: "unused.onnx" },
  scaling_factor: 1,
};

interface Soak {
  /** Items fetched; below `count` when the run was stopped at the time limit. */
  completed: number;
  timedOut: boolean;
  seconds: number;
  requests: number;
  bytes: number;
  faults: Record<FaultKind, number>;
  runnerRetries: number;
  wrongAccepted: number;
}

async function records(cache: string, task: string): Promise<Map<string, ActionRecord>> {
  const records = await openRecords(cache);
  try {
    return await records.actions(task);
  } finally {
    records.close();
  }
}

/** Runs `verify-sizes` against `mirror` with a fresh cache and checks every stored image. */
async function soak(label: string, mirror: Mirror): Promise<Soak> {
  const p = await PipelineProject.create({
    dataset: { kind: "ffhq", spec: { url: mirror.specUrl } },
    // Short stalls and back-offs: the mirror's stalls and quota pages end the same either way.
    download: {
      concurrency_per_host: concurrency,
      stall_s: 1,
      quota_backoff_s: 0.2,
      attempts: 12,
    },
    model: NO_MODEL,
  });
  try {
    mirror.resetStats();
    const started = performance.now();
    const child = p.command(["run", "verify-sizes", "--json"]).spawn();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, limitS * 1000);
    const out = await child.output();
    clearTimeout(timer);
    const seconds = (performance.now() - started) / 1000;
    const r = parse(out.code, out.stdout, out.stderr);
    const requestsOf = () =>
      [...mirror.stats.requests].filter(([path]) => path.endsWith(".png"))
        .reduce((a, [, n]) => a + n, 0);
    if (timedOut) {
      const done = (await records(p.cache, "fetch-images")).size;
      console.log(
        `${label}: stopped at the ${limitS} s limit with ${done} of ${count} items fetched ` +
          `(${requestsOf()} requests; faults ${JSON.stringify(mirror.stats.faults)})`,
      );
      return {
        completed: done,
        timedOut,
        seconds,
        requests: requestsOf(),
        bytes: mirror.stats.bytesServed,
        faults: { ...mirror.stats.faults },
        runnerRetries: 0,
        wrongAccepted: 0,
      };
    }
    const end = (task: string) => r.events.find((e) => e.event === "task-end" && e.task === task);
    const fetched = end("fetch-images")?.counts as { ran: number; failed: number } | undefined;
    if (r.code !== 0 || end("verify-sizes")?.status !== "ok" || fetched?.ran !== count) {
      const failed = r.events.filter((e) => e.event === "item" && e.status === "failed");
      throw new SoakError(
        `${label}: expected exit 0 and ${count} images fetched, found exit ${r.code} and ` +
          `${fetched?.ran ?? 0} fetched; failures: ${
            failed.slice(0, 5).map((e) => `${e.item}: ${e.reason}`).join("; ") || "none"
          }\n${r.stderr.slice(-2000)}`,
      );
    }
    // Every accepted file is re-read from the store and hashed against the spec.
    const spec = JSON.parse(new TextDecoder().decode(mirror.specBytes));
    const stored = await records(p.cache, "fetch-images");
    if (stored.size !== count) {
      throw new SoakError(`${label}: expected ${count} fetch-images records, found ${stored.size}`);
    }
    let wrongAccepted = 0;
    for (const [id, rec] of stored) {
      const bytes = await Deno.readFile(
        join(p.cache, "objects", rec.objects.image.slice(0, 2), rec.objects.image),
      );
      if (createHash("md5").update(bytes).digest("hex") !== spec[id].image.file_md5) {
        wrongAccepted++;
        console.error(`${label}: item ${id}: the stored image does not match the spec's MD5`);
      }
    }
    return {
      completed: count,
      timedOut,
      seconds,
      requests: requestsOf(),
      bytes: mirror.stats.bytesServed,
      faults: { ...mirror.stats.faults },
      runnerRetries: r.events.filter((e) => e.event === "retry").length,
      wrongAccepted,
    };
  } finally {
    await p.cleanup();
  }
}

const fmt = (x: number, digits = 1) => x.toFixed(digits);
const mirrorOptions = { count, imageSize, imageKind: "noise" as const, seed: 23 };

let t = performance.now();
const clean = await startMirror(mirrorOptions);
const faulty = await startMirror({ ...mirrorOptions, faults: { rate, kinds } });
console.log(
  `fault soak: ${count} items (${imageSize} px noise PNGs), ${rate * 100}% of file requests ` +
    `faulted (${kinds.join(", ")}), concurrency ${concurrency}; mirrors generated in ${
      fmt((performance.now() - t) / 1000)
    } s`,
);
let base: Soak;
let soaked: Soak;
try {
  t = performance.now();
  base = await soak("fault-free", clean);
  soaked = await soak("faulted", faulty);
} finally {
  await clean.close();
  await faulty.close();
}

if (base.timedOut || soaked.timedOut) {
  const ips = (s: Soak) => s.completed / s.seconds;
  console.error(
    `\nsoak FAILED: not finished within ${limitS} s: fault-free ${base.completed} items in ${
      fmt(base.seconds)
    } s (${fmt(ips(base))}/s), faulted ${soaked.completed} in ${fmt(soaked.seconds)} s (${
      fmt(ips(soaked))
    }/s)`,
  );
  Deno.exit(1);
}

const injected = ALL_FAULTS.reduce((a, k) => a + soaked.faults[k], 0);
// Every request beyond one per item followed a fault: a faulted response leaves its item
// unfinished, so the downloader asks again (an interstitial is answered by its confirm link).
const extra = soaked.requests - count;
console.log("\nfault kind      injected  retries");
for (const kind of ALL_FAULTS) {
  console.log(
    `${kind.padEnd(14)} ${String(soaked.faults[kind]).padStart(9)} ${
      String(soaked.faults[kind]).padStart(8)
    }`,
  );
}
console.log(`${"total".padEnd(14)} ${String(injected).padStart(9)} ${String(extra).padStart(8)}`);
console.log(
  `file requests: ${soaked.requests} for ${count} items (${extra} beyond one each; ` +
    `${injected} faults injected, ${
      fmt(100 * injected / soaked.requests)
    }% of requests); runner-level retry events: ${soaked.runnerRetries}`,
);
const ips = (s: Soak) => count / s.seconds;
console.log("\nrun          seconds   items/s   requests   wrong accepted");
for (const [name, s] of [["fault-free", base], ["faulted", soaked]] as const) {
  console.log(
    `${name.padEnd(12)} ${fmt(s.seconds).padStart(7)} ${fmt(ips(s)).padStart(9)} ${
      String(s.requests).padStart(10)
    } ${String(s.wrongAccepted).padStart(16)}`,
  );
}
console.log(
  `\nthroughput with faults: ${fmt(ips(soaked) / ips(base), 2)}× the fault-free run's ` +
    `(${fmt(soaked.seconds / base.seconds, 2)}× the time)`,
);

const problems: string[] = [];
for (const kind of kinds) {
  if (soaked.faults[kind] === 0) problems.push(`no ${kind} fault was injected`);
}
if (base.requests !== count) {
  problems.push(`the fault-free run made ${base.requests} requests for ${count} items`);
}
if (extra !== injected) {
  problems.push(`${extra} requests beyond one per item, but ${injected} faults were injected`);
}
if (base.wrongAccepted + soaked.wrongAccepted > 0) {
  problems.push(`${base.wrongAccepted + soaked.wrongAccepted} wrong files were accepted`);
}
if (problems.length) {
  console.error(`\nsoak FAILED: ${problems.join("; ")}`);
  Deno.exit(1);
}
console.log("all items complete; zero wrong files accepted");

/**
 * The chaos run: the demo pipeline (local mirror, hand-made demo VAE) run once cleanly and once
 * under `kill -9`s in every stage, then left to finish. Returns what a test needs to judge it:
 * the kills and where they landed, both output trees, the store check and, per file, every
 * request the mirror answered.
 *
 * Kills follow one of two plans. An event plan ({@link EVENT_PLAN}) kills at chosen moments the
 * run itself reveals: a partial download that grew, the first item a stage finished, a fresh
 * checkpoint, the package action starting, the publish folder appearing; it is the same on
 * every machine. A random plan aims kills at stages and sends each after a delay drawn from a
 * seeded source (printed first), scaled to how long the stage took in the clean run. Where a
 * kill landed is read back from the events the killed process managed to print: the stages that
 * showed work in that attempt and had not ended.
 *
 * @module
 */
import { RUN_JSON } from "../../lib/report/run_files.ts";
import { withoutRunSection } from "../../lib/report/run_section.ts";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ffhqFilePath } from "../fixtures/ffhq_source_text.ts";
import { type Mirror, startMirror } from "../fixtures/mirror.ts";
import { PipelineProject } from "../fixtures/pipeline_project.ts";
import { seededRandom } from "../../lib/base/random.ts";
import { writeDemoVae } from "../fixtures/vae.ts";
import { mirroredConfig } from "../fixtures/project.ts";

/** The stages kills are aimed at, in pipeline order. */
export const CHAOS_STAGES = [
  "fetch-images",
  "preprocess",
  "encode",
  "optimize",
  "package",
] as const;

/** One stage kills are aimed at. */
export type ChaosStage = typeof CHAOS_STAGES[number];

/** Moments of an attempt an event plan kills at. */
export type KillMoment =
  /** A partial download grew in this attempt and is part-way (some bytes, not all). */
  | "partial"
  /** The stage reported its first finished item in this attempt. */
  | "item"
  /** An optimize checkpoint reference was written in this attempt. */
  | "checkpoint"
  /** The package action started. */
  | "task-start"
  /** The publish folder (`out.tmp-…`) appeared beside the output. */
  | "publish";

/** One kill of an event plan. */
export interface KillPoint {
  stage: ChaosStage;
  at: KillMoment;
}

/**
 * The event plan of the suite: two kills in the downloads (each leaving a partial part-way),
 * one each in preprocess and encode, two in optimize (the second resuming from the first's
 * checkpoints), one as package starts and one in the middle of publishing.
 */
export const EVENT_PLAN: readonly KillPoint[] = [
  { stage: "fetch-images", at: "partial" },
  { stage: "fetch-images", at: "partial" },
  { stage: "preprocess", at: "item" },
  { stage: "encode", at: "item" },
  { stage: "optimize", at: "checkpoint" },
  { stage: "optimize", at: "checkpoint" },
  { stage: "package", at: "task-start" },
  { stage: "package", at: "publish" },
];

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /**
   * The kills: an event plan (the kill points, in order), or `{ random: n }` for n kills at
   * seeded random moments spread over the stages.
   */
  plan: readonly KillPoint[] | { random: number };
  /** Items of the mirror. Default 16. */
  images?: number;
  /** `optimize.max_steps` (tolerance is 0, so every image runs all of them). Default 40. */
  maxSteps?: number;
  /** Seed of a random plan's kill moments. Default: drawn at random, logged before any kill. */
  seed?: number;
  /**
   * Per-response throttle of the mirror, bytes/s, so downloads last long enough to be killed
   * part-way. Default 1,000,000 (the 512 px noise images are about 790 kB: the downloader
   * appends in 256 KiB blocks, so a killed download leaves bytes to resume).
   */
  throttleBytesPerSec?: number;
  /** Progress lines. Default: none. */
  log?: (line: string) => void;
}

/** One `kill -9`. */
export interface ChaosKill {
  /** Attempt number (1-based) of the killed run. */
  attempt: number;
  /** The stage the kill was aimed at. */
  target: ChaosStage;
  /** The moment it waited for (event plan), or null (random plan). */
  at: KillMoment | null;
  /** Stages that had shown work in the attempt and not ended when the process died. */
  active: ChaosStage[];
  /** `target` when it was active, else the furthest active stage, else null. */
  landed: ChaosStage | null;
  /** Milliseconds between spawning the attempt and the kill. */
  atMs: number;
}

/** A file of an output tree: path relative to the tree → bytes. */
export type Tree = Map<string, Uint8Array>;

/** What {@link runChaos} saw. */
export interface ChaosResult {
  seed: number;
  kills: ChaosKill[];
  /** Kills per stage they landed in. */
  landed: Record<ChaosStage, number>;
  /** The clean run's output tree and the one left after the kills and the final run. */
  clean: Tree;
  chaos: Tree;
  /** Files left beside the output directory by an interrupted publish (`out.tmp-…`). */
  leftovers: string[];
  /** Exit code and stderr of the final, unkilled run. */
  final: { code: number; stderr: string };
  /** `pipeline.ts verify --json` on the chaos cache. */
  verify: { code: number; checked: number; corrupt: unknown[] };
  /** Image files requested again in a later attempt after their download had completed. */
  redownloads: string[];
  /** Image requests that carried a Range header (resumed partial downloads), over all attempts. */
  rangeRequests: number;
  /**
   * Partial downloads an attempt found part-way (some bytes, not all) and asked the mirror for:
   * each must be a Range request from the partial's length, and these must be all the Range
   * requests.
   */
  partialsResumed: number;
  /**
   * Partial downloads an attempt found with every byte (a kill came between the last write and
   * the move into the store): taken over without asking the mirror.
   */
  partialsComplete: number;
  /**
   * Requests that did not ask for exactly the bytes after those kept: a part-way partial asked
   * from elsewhere than its length, a complete one asked for at all, a file without a partial
   * asked from elsewhere than byte 0.
   */
  resumeErrors: string[];
  /** Image requests over all attempts, and the images. */
  imageRequests: number;
  images: number;
  /** Seconds of the clean run and of the killed attempts plus the final run. */
  cleanSeconds: number;
  chaosSeconds: number;
  /** How long each stage was busy in the clean run, ms. */
  stageMs: Record<ChaosStage, number>;
}

const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** Reads a running pipeline's `--json` events as they come. */
class Attempt {
  readonly events: Record<string, unknown>[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #spawned = performance.now();
  readonly #stderr: Promise<string>;
  readonly #stdout: Promise<void>;
  readonly status: Promise<Deno.CommandStatus>;
  exited = false;
  /** Time of the first sign of work per stage, ms since spawn. */
  readonly workAt = new Map<string, number>();
  readonly endAt = new Map<string, number>();
  readonly ended = new Map<string, string>();

  constructor(command: Deno.Command) {
    this.#child = command.spawn();
    this.status = this.#child.status.then((s) => {
      this.exited = true;
      return s;
    });
    this.#stderr = new Response(this.#child.stderr).text();
    this.#stdout = this.#read();
  }

  get ms(): number {
    return performance.now() - this.#spawned;
  }

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of this.#child.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.startsWith('{"event"')) this.#event(JSON.parse(line));
      }
    }
  }

  #event(e: Record<string, unknown>): void {
    this.events.push(e);
    const task = e.task as string | undefined;
    if (!task) return;
    if (e.event === "item" || (e.event === "task-start" && task === "package")) {
      if (!this.workAt.has(task)) this.workAt.set(task, this.ms);
    }
    if (e.event === "task-end") {
      this.ended.set(task, e.status as string);
      this.endAt.set(task, this.ms);
    }
  }

  /** Marks work seen by other means (a fresh checkpoint). */
  sawWork(task: string): void {
    if (!this.workAt.has(task)) this.workAt.set(task, this.ms);
  }

  /** Polls `ready` until it holds (true) or the process has exited (false). */
  async until(ready: () => boolean | Promise<boolean>): Promise<boolean> {
    while (!this.exited) {
      if (await ready()) return true;
      await new Promise((r) => setTimeout(r, 5));
    }
    return false;
  }

  kill(): void {
    if (!this.exited) this.#child.kill("SIGKILL");
  }

  /** Waits for the process and for every line it printed. */
  async finish(): Promise<{ code: number; killed: boolean; stderr: string }> {
    const status = await this.status;
    await this.#stdout;
    return { code: status.code, killed: status.signal === "SIGKILL", stderr: await this.#stderr };
  }

  /** Stages that showed work in this attempt and had not ended. */
  active(): ChaosStage[] {
    return CHAOS_STAGES.filter((s) => this.workAt.has(s) && !this.ended.has(s));
  }
}

/** Every file under `dir`, by relative path. */
export async function readTree(dir: string): Promise<Tree> {
  const out: Tree = new Map();
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(join(d, e.name), `${rel}${e.name}/`);
      else out.set(`${rel}${e.name}`, await Deno.readFile(join(d, e.name)));
    }
  };
  await walk(dir, "");
  return out;
}

/** Thrown when the clean reference run does not succeed, so there is nothing to compare with. */
export class ChaosRunError extends Error {
  override readonly name = "ChaosRunError";
}

/** Thrown when a report does not have the layout {@link reportWithoutTimings} expects. */
export class ReportLayoutError extends Error {
  override readonly name = "ReportLayoutError";
}

/**
 * The report with the section stating the run that built it (its date and timings) cut out;
 * it must occur exactly once, so a changed layout fails instead of comparing too little.
 */
export function reportWithoutTimings(html: string): string {
  try {
    return withoutRunSection(html);
  } catch (e) {
    throw new ReportLayoutError(`report.html: ${(e as Error).message}`);
  }
}

/**
 * The publish marker without the files that state the run (the report and `run.json`): the
 * digests of every other published file must match.
 */
export function markerWithoutReport(text: string): Record<string, string> {
  const files = { ...(JSON.parse(text).files as Record<string, string>) };
  for (const name of ["report.html", RUN_JSON]) {
    if (!files[name]) {
      throw new ReportLayoutError(`.latentforge.json: expected files to list ${name}`);
    }
    delete files[name];
  }
  return files;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Bytes of each file directly in `dir` (none when it does not exist). */
async function sizesIn(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const e of await Array.fromAsync(Deno.readDir(dir)).catch(() => [])) {
    const info = await Deno.stat(join(dir, e.name)).catch(() => null);
    if (info) out.set(e.name, info.size);
  }
  return out;
}

/** Text of each committed checkpoint reference in `dir` (temp files of a rename excluded). */
async function referencesIn(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await Array.fromAsync(Deno.readDir(dir)).catch(() => [])) {
    if (e.name.includes(".tmp-")) continue;
    const text = await Deno.readTextFile(join(dir, e.name)).catch(() => null);
    if (text !== null) out.set(e.name, text);
  }
  return out;
}

/**
 * Runs the demo pipeline cleanly, then again under the kills of `options.plan`, then to the end.
 *
 * @example
 * ```ts
 * const r = await runChaos({ plan: EVENT_PLAN });
 * console.log(r.landed);
 * ```
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const {
    plan,
    images = 16,
    maxSteps = 40,
    seed = Math.floor(Math.random() * 2 ** 31),
    throttleBytesPerSec = 1_000_000,
    log = () => {},
  } = options;
  const points = "random" in plan ? null : [...plan];
  const killCount = points ? points.length : (plan as { random: number }).random;
  if (!points) log(`seed ${seed} (LATENTFORGE_CHAOS_SEED=${seed} replays the random delays)`);
  const random = seededRandom(seed);
  const base = await Deno.makeTempDir({ prefix: "latentforge-chaos-" });
  let mirror: Mirror | undefined;
  const projects: PipelineProject[] = [];
  try {
    mirror = await startMirror({
      count: images,
      imageSize: 512,
      imageKind: "noise",
      seed: 1,
      throttleBytesPerSec,
    });
    const vae = await writeDemoVae(join(base, "vae"));
    // Both runs publish to the same directory: the config, paths included, is in the files.
    const outDir = join(base, "out");
    const demo = JSON.parse(await Deno.readTextFile(join(REPO, "config/demo.json")));
    const config = mirroredConfig({
      ...demo,
      download: { ...demo.download, concurrency_per_host: 4 },
      model: { ...demo.model, threads: 2 },
      // Every image runs all its steps (tolerance 0), with frequent checkpoints to land in.
      optimize: {
        ...demo.optimize,
        max_steps: maxSteps,
        tolerance: 0,
        batch_size: 4,
        checkpoint_every: 4,
      },
      package: { ...demo.package, out_dir: outDir },
    }, { mirror, vae });
    const clean = await PipelineProject.create(config);
    projects.push(clean);
    const chaos = await PipelineProject.create(config);
    projects.push(chaos);

    // The clean run: the reference tree and how long each stage is busy.
    let t0 = performance.now();
    const reference = new Attempt(clean.command(["run", "package", "--json"]));
    const refEnd = await reference.finish();
    const cleanSeconds = (performance.now() - t0) / 1000;
    if (refEnd.code !== 0) {
      throw new ChaosRunError(
        `the clean run: expected exit 0, found ${refEnd.code}: ${refEnd.stderr}`,
      );
    }
    const stageMs = Object.fromEntries(CHAOS_STAGES.map((s) => {
      const start = s === "optimize" ? reference.endAt.get("encode") : reference.workAt.get(s);
      return [s, Math.max(1, (reference.endAt.get(s) ?? 0) - (start ?? 0))];
    })) as Record<ChaosStage, number>;
    log(`clean run: ${cleanSeconds.toFixed(1)} s; stage ms ${JSON.stringify(stageMs)}`);
    const cleanTree = await readTree(outDir);
    await Deno.remove(outDir, { recursive: true });

    // A random plan's kills per stage: an even share, the rest to the stages that last longest.
    const quota = Object.fromEntries(
      CHAOS_STAGES.map((s) => [s, Math.floor(killCount / CHAOS_STAGES.length)]),
    ) as Record<ChaosStage, number>;
    const extra: ChaosStage[] = ["fetch-images", "optimize", "package", "preprocess", "encode"];
    for (let i = 0; i < killCount % CHAOS_STAGES.length; i++) quota[extra[i]]++;

    const imagePath = (id: string) => ffhqFilePath("images1024x1024", Number(id));
    const digestOf = new Map<string, string>();
    const pathOfMd5 = new Map<string, string>();
    for (const [path, f] of mirror.files) {
      if (!path.startsWith("images1024x1024/")) continue;
      digestOf.set(path, sha256(f.bytes));
      pathOfMd5.set(f.md5, path);
    }
    const sizeOf = (path: string) => mirror!.files.get(path)!.bytes.length;
    const inStore = (path: string) =>
      Deno.stat(join(chaos.cache, "objects", digestOf.get(path)!.slice(0, 2), digestOf.get(path)!))
        .then(() => true, () => false);
    const completedIn = new Map<string, number>();
    const redownloads: string[] = [];
    let previous = new Map<string, number>();
    let rangeRequests = 0;
    let imageRequests = 0;
    /** Requests answered per image path at the end of the previous attempt. */
    let startsSeen = new Map<string, number>();
    let partialsResumed = 0;
    let partialsComplete = 0;
    const resumeErrors: string[] = [];
    /**
     * Holds an attempt's first request of each file to the partial it found: from the
     * partial's length when part-way, none when complete, from byte 0 without one.
     */
    const checkResumes = (attempt: number, atStart: Map<string, number>) => {
      const kept = new Map([...atStart].map(([md5, n]) => [pathOfMd5.get(md5)!, n]));
      for (const path of digestOf.keys()) {
        const asked = (mirror!.stats.starts.get(path) ?? []).slice(startsSeen.get(path) ?? 0);
        const have = kept.get(path) ?? 0;
        const full = sizeOf(path);
        if (have === full) partialsComplete++;
        if (asked.length === 0) continue;
        if (have > 0 && have < full) partialsResumed++;
        const want = have === full ? null : have;
        if (asked[0] !== want) {
          resumeErrors.push(
            `${path} in attempt ${attempt}: the partial held ${have} of ${full} bytes; ` +
              (want === null
                ? "it was asked for anyway"
                : `the request asked from byte ${asked[0]}`),
          );
        }
      }
      startsSeen = new Map(
        [...mirror!.stats.starts].map(([path, starts]) => [path, starts.length]),
      );
    };
    const partialDir = join(chaos.cache, "partial", "images");
    /** Checks an attempt's requests against completed downloads, then records new ones. */
    const account = async (attempt: number, a: Attempt) => {
      const now = new Map(mirror!.stats.requests);
      for (const [path, n] of now) {
        const delta = n - (previous.get(path) ?? 0);
        if (delta <= 0 || !digestOf.has(path)) continue;
        imageRequests += delta;
        const done = completedIn.get(path);
        if (done !== undefined) {
          redownloads.push(
            `${path}: requested ${delta} times in attempt ${attempt}, completed in attempt ${done}`,
          );
        }
      }
      previous = now;
      rangeRequests = mirror!.stats.rangeRequests;
      for (const e of a.events) {
        if (e.event === "item" && e.task === "fetch-images" && e.status === "ran") {
          if (!completedIn.has(imagePath(String(e.item)))) {
            completedIn.set(imagePath(String(e.item)), attempt);
          }
        }
      }
      for (const path of digestOf.keys()) {
        if (!completedIn.has(path) && await inStore(path)) completedIn.set(path, attempt);
      }
    };

    mirror.resetStats();
    const kills: ChaosKill[] = [];
    const landed = Object.fromEntries(CHAOS_STAGES.map((s) => [s, 0])) as Record<
      ChaosStage,
      number
    >;
    const finished = new Set<string>();
    const checkpoints = join(chaos.cache, "checkpoints", "optimize");
    t0 = performance.now();
    let attempt = 0;
    let final: { code: number; stderr: string } | undefined;
    while (kills.length < killCount) {
      const point = points?.[kills.length];
      const target = point?.stage ??
        CHAOS_STAGES.find((s) => landed[s] < quota[s] && !finished.has(s)) ?? "package";
      attempt++;
      // What this attempt starts from, so that only its own progress counts as an event.
      const partialsAtStart = await sizesIn(partialDir);
      const referencesAtStart = await referencesIn(checkpoints);
      const a = new Attempt(chaos.command(["run", "package", "--json"]));
      const grownPartial = async () => {
        for (const [name, size] of await sizesIn(partialDir)) {
          const full = sizeOf(pathOfMd5.get(name)!);
          if (size > 0 && size < full && size !== partialsAtStart.get(name)) {
            a.sawWork("fetch-images");
            return true;
          }
        }
        return false;
      };
      const freshCheckpoint = async () => {
        for (const [name, text] of await referencesIn(checkpoints)) {
          if (referencesAtStart.get(name) !== text) {
            a.sawWork("optimize");
            return true;
          }
        }
        return false;
      };
      const publishing = async () =>
        (await Array.fromAsync(Deno.readDir(base))).some((e) => e.name.startsWith("out.tmp-"));
      let ready: boolean;
      if (point) {
        ready = await a.until(async () => {
          switch (point.at) {
            case "partial":
              return await grownPartial();
            case "item":
              return a.events.some((e) => e.event === "item" && e.task === point.stage);
            case "checkpoint":
              return await freshCheckpoint();
            case "task-start":
              return a.events.some((e) => e.event === "task-start" && e.task === point.stage);
            case "publish":
              return await publishing();
          }
        });
        if (ready) a.kill();
      } else {
        // Several kills may share one stage: each waits a random part of its share of the
        // time. Package is one action that starts over after a kill; its kills stay in the part
        // before its record is committed (a rerun that only publishes is over too soon to be
        // hit), and the last kill of all in its first third, so that it is not missed.
        const window = target !== "package"
          ? Math.max(20, stageMs[target] * 0.5 / quota[target])
          : stageMs.package * (kills.length === killCount - 1 ? 0.35 : 0.6);
        ready = await a.until(async () =>
          target === "optimize"
            ? await freshCheckpoint()
            : a.workAt.has(target) && (target !== "fetch-images" || await grownPartial())
        );
        if (ready) {
          await new Promise((r) => setTimeout(r, random() * window));
          if (target === "optimize" || a.active().includes("optimize")) await freshCheckpoint();
          a.kill();
        }
      }
      const atMs = a.ms;
      const end = await a.finish();
      await account(attempt, a);
      checkResumes(attempt, partialsAtStart);
      for (const [task, status] of a.ended) if (status === "ok") finished.add(task);
      if (!ready || !end.killed) {
        // The run ended on its own before the kill: nothing is left to interrupt.
        final = end;
        log(
          `attempt ${attempt}: finished (${end.code}) before a kill aimed at ${target}` +
            (point ? ` (${point.at})` : ""),
        );
        break;
      }
      const active = a.active();
      const kill: ChaosKill = {
        attempt,
        target,
        at: point?.at ?? null,
        active,
        landed: active.includes(target) ? target : active.at(-1) ?? null,
        atMs: Math.round(atMs),
      };
      kills.push(kill);
      if (kill.landed) landed[kill.landed]++;
      const left = [...await sizesIn(partialDir)].filter(([, size]) => size > 0);
      log(
        `kill ${kills.length}: aimed at ${target}${point ? ` (${point.at})` : ""}, landed in ` +
          `${kill.landed} (active: ${active.join(", ")}) at ${kill.atMs} ms; partials left: ` +
          left.map(([name, kept]) => `${kept}/${sizeOf(pathOfMd5.get(name)!)}`).join(", "),
      );
    }
    if (!final) {
      attempt++;
      const atStart = await sizesIn(partialDir);
      const a = new Attempt(chaos.command(["run", "package", "--json"]));
      final = await a.finish();
      await account(attempt, a);
      checkResumes(attempt, atStart);
    }
    const chaosSeconds = (performance.now() - t0) / 1000;

    const verifyOut = await chaos.command(["verify", "--json"]).output();
    const verifyText = new TextDecoder().decode(verifyOut.stdout).trim().split("\n").at(-1) ?? "";
    const verified = verifyText.startsWith("{") ? JSON.parse(verifyText) : {};
    const leftovers = [...Deno.readDirSync(base)].map((e) => e.name).filter((n) =>
      n.startsWith("out.")
    );
    return {
      seed,
      kills,
      landed,
      clean: cleanTree,
      chaos: await readTree(outDir).catch(() => new Map()),
      leftovers,
      final,
      verify: {
        code: verifyOut.code,
        checked: verified.checked ?? -1,
        corrupt: verified.corrupt ?? [
          new TextDecoder().decode(verifyOut.stdout) + new TextDecoder().decode(verifyOut.stderr),
        ],
      },
      redownloads,
      rangeRequests,
      partialsResumed,
      partialsComplete,
      resumeErrors,
      imageRequests,
      images,
      cleanSeconds,
      chaosSeconds,
      stageMs,
    };
  } finally {
    await mirror?.close();
    for (const p of projects) await p.cleanup();
    await Deno.remove(base, { recursive: true });
  }
}

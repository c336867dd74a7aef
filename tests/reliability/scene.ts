/**
 * The stage the reliability corpus plays on: a small real pipeline (a local FFHQ-style mirror,
 * the demo VAE, 16-pixel images, 3 optimize steps) run once cleanly, and copies of that
 * finished project — config, cache and published dataset — in temp directories of their own,
 * one per row, so each row starts from a complete dataset and a warm cache.
 *
 * The config names its output folder relative to the project (`out`), so every copy has the
 * same config, and therefore the same cache keys, as the clean run.
 *
 * @module
 */
import { join, relative } from "node:path";
import { KEYS } from "../../lib/store/records.ts";
import { withoutRunSection } from "../../lib/report/run_section.ts";
import { assertEquals } from "../fixtures/assert.ts";
import { type Mirror, startMirror } from "../fixtures/mirror.ts";
import { mirroredConfig, parse, pipelineCommand, type Ran } from "../fixtures/project.ts";
import { writeDemoVae } from "../fixtures/vae.ts";

/** Images of the corpus's dataset. */
export const IMAGES = 6;

/** Files of a folder: path relative to it → bytes. */
export type Tree = Map<string, Uint8Array>;

/** Every file under `dir`, by path relative to it (empty when `dir` is missing). */
export async function readTree(dir: string): Promise<Tree> {
  const files: Tree = new Map();
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const path = join(d, e.name);
      if (e.isDirectory) await walk(path);
      else files.set(relative(dir, path), await Deno.readFile(path));
    }
  };
  await walk(dir).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  return files;
}

/**
 * What must match a clean run's bytes: every file but the marker and `run.json` (the date and
 * timings of the run that built the dataset), and the report outside its run section.
 */
export function comparable(tree: Tree): Map<string, string> {
  const out = new Map<string, string>();
  for (const [rel, bytes] of tree) {
    if (rel === ".latentforge.json" || rel === "run.json") continue;
    const text = rel === "report.html"
      ? withoutRunSection(new TextDecoder().decode(bytes))
      : Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    out.set(rel, text);
  }
  return out;
}

/** Fails unless two published datasets hold the same files with the same bytes. */
export function assertSameDataset(actual: Tree, expected: Tree, what: string): void {
  const [a, e] = [comparable(actual), comparable(expected)];
  assertEquals([...a.keys()].sort(), [...e.keys()].sort(), `${what}: the files`);
  const differing = [...e].filter(([rel, text]) => a.get(rel) !== text).map(([rel]) => rel);
  assertEquals(differing, [], `${what}: files whose bytes differ from the clean run's`);
}

/** One project: config, cache and output folder in a temp directory. */
export class Scene {
  readonly dir: string;
  readonly cache: string;
  readonly out: string;
  readonly configPath: string;

  constructor(dir: string) {
    this.dir = dir;
    this.cache = join(dir, "cache");
    this.out = join(dir, "out");
    this.configPath = join(dir, "config.json");
  }

  /** The command line of the pipeline with this scene's cache (and config, for `run`). */
  command(args: string[], env: Record<string, string> = {}): Deno.Command {
    return pipelineCommand(args, {
      cache: this.cache,
      configPath: this.configPath,
      cwd: this.dir,
      env,
    });
  }

  /** Runs a command to its end. */
  async run(args: string[], env: Record<string, string> = {}): Promise<Ran> {
    const out = await this.command(args, env).output();
    return parse(out.code, out.stdout, out.stderr);
  }

  /** Rewrites the config with some sections' fields changed. */
  async patchConfig(patch: Record<string, Record<string, unknown>>): Promise<void> {
    const config = JSON.parse(await Deno.readTextFile(this.configPath));
    for (const [section, fields] of Object.entries(patch)) {
      config[section] = { ...config[section], ...fields };
    }
    await Deno.writeTextFile(this.configPath, JSON.stringify(config, null, 1));
  }

  /** The stored object a task's current record names as output `name` of `item`. */
  async objectOf(task: string, item: string, name: string): Promise<string> {
    const kv = await Deno.openKv(join(this.cache, "records.sqlite3"));
    try {
      const rec = (await kv.get<{ objects: Record<string, string> }>(KEYS.action(task, item)))
        .value;
      const digest = rec?.objects[name];
      if (!digest) throw new Error(`no recorded ${task} ${item} output ${name}`);
      return digest;
    } finally {
      kv.close();
    }
  }

  /** The path of a stored object. */
  objectPath(digest: string): string {
    return join(this.cache, "objects", digest.slice(0, 2), digest);
  }

  /** The published dataset now. */
  published(dir = this.out): Promise<Tree> {
    return readTree(dir);
  }

  async cleanup(): Promise<void> {
    await Deno.remove(this.dir, { recursive: true }).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}

/** The clean run every row starts from. */
export interface Stage {
  /** The finished clean project (never changed by a row). */
  clean: Scene;
  /** Its published dataset. */
  dataset: Tree;
  /** Item ids of the dataset. */
  items: string[];
  mirror: Mirror;
  /** Where the demo VAE lives (`encoder`, `decoder` paths). */
  vae: { encoder: string; decoder: string };
  /** A copy of the clean project in a fresh temp directory. */
  copy(): Promise<Scene>;
  close(): Promise<void>;
}

/**
 * Starts the mirror, writes the VAE and runs the pipeline once cleanly.
 *
 * @example
 * ```ts
 * const stage = await setStage();
 * const scene = await stage.copy();
 * ```
 */
export async function setStage(): Promise<Stage> {
  const root = await Deno.makeTempDir({ prefix: "latentforge-reliability-" });
  const mirror = await startMirror({ count: IMAGES, imageSize: 32, seed: 5 });
  try {
    const vae = await writeDemoVae(join(root, "vae"));
    const clean = new Scene(join(root, "clean"));
    await Deno.mkdir(clean.dir);
    await Deno.writeTextFile(
      clean.configPath,
      JSON.stringify(
        mirroredConfig({
          dataset: { component: "image" },
          download: { concurrency_per_host: 4, stall_s: 10, attempts: 3 },
          labels: { split_by: ["gender"], max_missing: 0 },
          preprocess: { size: 16, crop: "center" },
          model: { scaling_factor: 1, input_range: [-1, 1], providers: ["cpu"], threads: 1 },
          optimize: { max_steps: 3, batch_size: 4, lr: 0.05 },
          package: { out_dir: "out", samples: 2 },
        }, { mirror, vae }),
        null,
        1,
      ),
    );
    const first = await clean.run(["run", "--json"]);
    if (first.code !== 0) throw new Error(`the clean run failed (${first.code}):\n${first.stderr}`);
    const dataset = await clean.published();
    const manifest = JSON.parse(new TextDecoder().decode(dataset.get("manifest.json")));
    const items = Object.keys(manifest.images).sort();
    let copies = 0;
    return {
      clean,
      dataset,
      items,
      mirror,
      vae,
      async copy() {
        const scene = new Scene(join(root, `scene-${++copies}`));
        const cp = await new Deno.Command("cp", { args: ["-a", clean.dir, scene.dir] }).output();
        if (cp.code !== 0) throw new Error(`cp -a: ${new TextDecoder().decode(cp.stderr)}`);
        // The copy's cache published the copy's folder, as its marker says.
        await Deno.writeTextFile(join(scene.cache, "published.json"), JSON.stringify([scene.out]));
        const markerPath = join(scene.out, ".latentforge.json");
        const marker = JSON.parse(await Deno.readTextFile(markerPath));
        await Deno.writeTextFile(markerPath, JSON.stringify({ ...marker, cache: scene.cache }));
        return scene;
      },
      async close() {
        await mirror.close();
        await Deno.remove(root, { recursive: true });
      },
    };
  } catch (e) {
    await mirror.close();
    await Deno.remove(root, { recursive: true });
    throw e;
  }
}

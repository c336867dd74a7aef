/**
 * Least privilege: the `deno task`s grant no blanket access; the launcher computes reads,
 * writes and hosts from the command's config; a write outside them is refused with a clear
 * message; a normal run and the demo work under the narrowed flags.
 */
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { denoFlags, permissionsFor } from "../lib/cli/launch.ts";
import { libdeflatePath } from "../lib/image/libdeflate.ts";
import { libcPath } from "../lib/dataset/libc_dir.ts";
import { solidPng } from "./bad_inputs/generate.ts";
import { writeDemoVae } from "./fixtures/vae.ts";
import denoJson from "../deno.json" with { type: "json" };

const REPO = resolve(fileURLToPath(new URL("../", import.meta.url)));
const TASKS = denoJson.tasks as Record<string, string>;

function noCrash(text: string, what: string): void {
  assert(!/^\s{4}at /m.test(text), `${what}: a stack trace was printed:\n${text}`);
  assert(!text.includes("Uncaught"), `${what}: an uncaught error:\n${text}`);
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: REPO,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A folder dataset of three small images, the demo VAE and a config writing into `dir/out`. */
async function project(dir: string) {
  await Deno.mkdir(join(dir, "images"), { recursive: true });
  for (let i = 0; i < 3; i++) {
    await Deno.writeFile(join(dir, "images", `img${i}.png`), await solidPng(16, 40 + 70 * i));
  }
  const vae = await writeDemoVae(join(dir, "vae"));
  const config = {
    dataset: { kind: "folder", path: join(dir, "images") },
    preprocess: { size: 16 },
    model: {
      encoder: { path: vae.encoder },
      decoder: { path: vae.decoder },
      scaling_factor: 1,
      providers: ["cpu"],
      threads: 1,
    },
    optimize: { max_steps: 3 },
    package: { out_dir: join(dir, "out"), formats: ["npz", "hdf5"], samples: 1 },
  };
  const path = join(dir, "config.json");
  await Deno.writeTextFile(path, JSON.stringify(config));
  return { config, path, cache: join(dir, "cache") };
}

Deno.test("no deno task grants blanket access", () => {
  for (const [name, line] of Object.entries(TASKS)) {
    assert(!/(^|\s)(-A|--allow-all)(\s|$)/.test(line), `task ${name} uses --allow-all: ${line}`);
  }
  // The product commands go through the launcher, which grants per config.
  for (const name of ["run", "status", "explain", "dag", "gc", "verify", "schedule", "demo"]) {
    assertMatch(TASKS[name], /lib\/cli\/launch\.ts/);
  }
});

Deno.test("the launcher grants the config's paths and hosts, and nothing to other commands", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-perm-" });
  try {
    const config = {
      dataset: {
        kind: "ffhq",
        spec: { url: "http://127.0.0.1:8123/ffhq-dataset-v2.json" },
        mirrors: ["https://mirror.example.org/ffhq/"],
      },
      labels: { source: { path: join(dir, "labels.csv") } },
      model: {
        encoder: { path: join(dir, "m", "enc.onnx") },
        decoder: { url: "https://models.example.org/dec.onnx" },
        scaling_factor: 1,
      },
      package: { out_dir: join(dir, "data", "out") },
      executor: { kind: "slurm", tasks: ["optimize"] },
    };
    const cfg = join(dir, "c.json");
    await Deno.writeTextFile(cfg, JSON.stringify(config));
    const cache = join(dir, "cache");
    const p = await permissionsFor(["run", "--config", cfg, "--cache", cache]);
    assertEquals(p.write, [cache, join(dir, "data")]);
    for (const r of [cache, cfg, join(dir, "labels.csv"), join(dir, "m", "enc.onnx"), REPO]) {
      assert(p.read.includes(r), `read ${r}: ${p.read}`);
    }
    assertEquals(p.net, [
      "models.example.org",
      "127.0.0.1:8123",
      "mirror.example.org",
      "drive.google.com",
      "drive.usercontent.google.com",
    ]);
    assertEquals(p.run, ["sbatch", "squeue", "sacct", "scontrol", "scancel"]);
    // FFI: the npm packages' native addons, and libdeflate's and the C library's one file each
    // where they are installed.
    const deflate = libdeflatePath();
    const libc = libcPath();
    assertEquals(p.ffi, [
      join(REPO, "node_modules"),
      ...(deflate ? [deflate] : []),
      ...(libc ? [libc] : []),
    ]);
    assertEquals(p.tmpDir, join(cache, "tmp"));
    const flags = denoFlags(p);
    assert(flags.includes("--no-prompt"));
    assert(!flags.some((f) => f === "--allow-all" || f === "--allow-write"));

    // gc and verify touch only the cache: no network, no output directory, nothing to run.
    const gc = await permissionsFor(["gc", "--cache", cache]);
    assertEquals(gc.write, [cache]);
    assertEquals(gc.net, []);
    assertEquals(gc.run, []);
    // A local URL list names its hosts; the run may contact those and no others.
    await Deno.writeTextFile(
      join(dir, "list.txt"),
      "https://a.example.org/1.png\nhttp://b.example.org:8080/2.png\n",
    );
    const urls = { ...config, dataset: { kind: "urls", list: { path: join(dir, "list.txt") } } };
    await Deno.writeTextFile(cfg, JSON.stringify({ ...urls, executor: undefined }));
    const u = await permissionsFor(["run", "--config", cfg, "--cache", cache]);
    assertEquals(u.net, ["models.example.org", "a.example.org", "b.example.org:8080"]);
    assertEquals(u.run, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task run works under the narrowed flags; a write elsewhere is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-perm-" });
  try {
    const p = await project(dir);
    const ok = await run("deno", [
      "task",
      "run",
      "package",
      "--config",
      p.path,
      "--cache",
      p.cache,
    ]);
    assertEquals(ok.code, 0, ok.stderr);
    assertStringIncludes(ok.stderr, "lib/cli/launch.ts run");
    noCrash(ok.stderr + ok.stdout, "deno task run");
    const manifest = JSON.parse(await Deno.readTextFile(join(dir, "out", "manifest.json")));
    assert(manifest, "the dataset was published");
    assert((await Deno.stat(join(dir, "out", "all", "latents.h5"))).size > 0);

    // The same flags with a config whose out_dir lies elsewhere: publishing is refused.
    const elsewhere = await Deno.makeTempDir({ prefix: "latentforge-elsewhere-" });
    try {
      // Exactly what the launcher would start: its flags and its temp directory.
      const granted = await permissionsFor(["run", "--config", p.path, "--cache", p.cache]);
      const flags = denoFlags(granted);
      const env = { TMPDIR: granted.tmpDir };
      const moved = join(dir, "moved.json");
      const outside = join(elsewhere, "sub", "out");
      await Deno.writeTextFile(
        moved,
        JSON.stringify({ ...p.config, package: { ...p.config.package, out_dir: outside } }),
      );
      const refused = await run("deno", [
        "run",
        ...flags,
        join(REPO, "pipeline.ts"),
        "run",
        "package",
        "--json",
        "--config",
        moved,
        "--cache",
        p.cache,
      ], env);
      // The output folder is checked before any work: a bad invocation.
      assertEquals(refused.code, 2, refused.stderr);
      noCrash(refused.stderr + refused.stdout, "the refused run");
      assertMatch(refused.stderr, new RegExp(`Requires read access to "${elsewhere}`));
      assertEquals(await Deno.stat(outside).then(() => true, () => false), false);

      // A cache outside the grant is refused before anything runs, without a stack trace.
      const badCache = await run("deno", [
        "run",
        ...flags,
        join(REPO, "pipeline.ts"),
        "gc",
        "--cache",
        join(elsewhere, "cache"),
      ], env);
      assertEquals(badCache.code, 2, badCache.stderr);
      noCrash(badCache.stderr, "gc on a cache outside the grant");
      assertMatch(
        badCache.stderr,
        /^error: Requires write access to ".*": outside what the config names/,
      );
    } finally {
      await Deno.remove(elsewhere, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task demo works under the narrowed flags; status, explain and a plan then write only the cache", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-perm-demo-" });
  try {
    const out = join(dir, "out");
    const cache = join(dir, "cache");
    const vae = join(cache, "demo", "vae");
    // What the demo runs with, so that status, explain and the plan answer for that run.
    const options = [
      "--limit",
      "6",
      "--set",
      "optimize.max_steps=6",
      "--set",
      `package.out_dir=${out}`,
      "--cache",
      cache,
    ];
    const demoRun = [
      "--config",
      "config/demo.json",
      "--set",
      `model.encoder.path=${join(vae, "vae_encoder.onnx")}`,
      "--set",
      `model.decoder.path=${join(vae, "vae_decoder.onnx")}`,
      ...options,
    ];
    const readers = [["status", ...demoRun], ["explain", "package", ...demoRun], [
      "run",
      "--dry-run",
      ...demoRun,
    ]];
    // Before and after the build alike, the readers are granted writes to the cache only.
    for (const args of readers) {
      assertEquals((await permissionsFor(args, { cwd: REPO })).write, [cache], args.join(" "));
    }
    const r = await run("deno", ["task", "demo", ...options]);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    noCrash(r.stderr + r.stdout, "deno task demo");
    assertStringIncludes(r.stdout, "demo finished in");
    const manifest = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
    assert(manifest, "the demo dataset was published");

    for (const args of readers) {
      assertEquals((await permissionsFor(args, { cwd: REPO })).write, [cache], args.join(" "));
      const [command, ...rest] = args;
      const read = await run("deno", ["task", command, ...rest]);
      const what = `deno task ${args.join(" ")}`;
      assertEquals(read.code, 0, `${what}: ${read.stderr}`);
      noCrash(read.stderr + read.stdout, what);
      assert(!/Requires \w+ access/.test(read.stderr + read.stdout), `${what}: ${read.stderr}`);
    }
    const status = await run("deno", ["task", "status", "--json", ...demoRun]);
    const tasks = JSON.parse(status.stdout).tasks as { task: string; cached: number }[];
    assertEquals(tasks.find((t) => t.task === "optimize")?.cached, 6, status.stdout);
    const explain = await run("deno", ["task", "explain", "package", ...demoRun]);
    assertMatch(explain.stdout, /package: up to date/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * What a newcomer types: `~/photos` and `$HOME/photos` in `--set` values, config files,
 * `--cache` and `--config` name the home directory (the launcher grants what they name), and a
 * misspelt field is answered with the field it was probably meant to be.
 */
import { join } from "node:path";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./fixtures/assert.ts";
import { ConfigError, loadConfig } from "../lib/dag/config.ts";
import { permissionsFor } from "../lib/cli/launch.ts";
import { main } from "../lib/cli/main.ts";
import { pipeline } from "../pipeline.ts";

const HOME = Deno.env.get("HOME")!;

/** A config file in `dir` for a folder dataset at `datasetPath`, with the given extras. */
async function writeConfig(dir: string, datasetPath: string, extra: object = {}) {
  const path = join(dir, "config.json");
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      dataset: { kind: "folder", path: datasetPath },
      model: { encoder: { path: "e.onnx" }, decoder: { path: "d.onnx" }, scaling_factor: 1 },
      ...extra,
    }),
  );
  return path;
}

Deno.test("~ and $HOME in a config's paths and in --set values name the home directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-home-" });
  try {
    const file = await writeConfig(dir, "~/photos", {
      package: { out_dir: "${HOME}/out/photos" },
    });
    const config = await loadConfig(pipeline, file, ["model.decoder.path=$HOME/models/d.onnx"]);
    assertEquals(config.dataset.kind === "folder" && config.dataset.path, `${HOME}/photos`);
    assertEquals(config.package.out_dir, `${HOME}/out/photos`);
    assertEquals(config.model.decoder?.path, `${HOME}/models/d.onnx`);
    // Elsewhere in a path, or another user's home, it is an ordinary character.
    const other = await loadConfig(pipeline, file, ["dataset.path=data/~/x", "dataset.name=~bob"]);
    assertEquals(other.dataset.kind === "folder" && other.dataset.path, "data/~/x");
    assertEquals(other.dataset.name, "~bob");
    // The config file itself, given as ~/… (HOME is this test's folder for the moment).
    Deno.env.set("HOME", dir);
    try {
      const home = await loadConfig(pipeline, "~/config.json");
      assertEquals(home.dataset.kind === "folder" && home.dataset.path, `${dir}/photos`);
    } finally {
      Deno.env.set("HOME", HOME);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the launcher grants what ~ names: the cache, the dataset folder, the output folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-home-" });
  try {
    const file = await writeConfig(dir, "~/photos");
    const p = await permissionsFor([
      "run",
      "--config",
      file,
      "--cache=~/lf-cache",
      "--set",
      "package.out_dir=~/out/photos",
    ], { cwd: dir });
    assertEquals(p.write, [`${HOME}/lf-cache`, `${HOME}/out`]);
    assert(p.read.includes(`${HOME}/photos`), `${p.read}`);
    assertEquals(p.tmpDir, `${HOME}/lf-cache/tmp`);
    // Nothing under the temp dir named "~" is granted: the path was never taken literally.
    assert(!p.read.some((r) => r.includes("/~")), `${p.read}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--cache=~/… reaches the command expanded", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-home-" });
  const previous = Deno.env.get("HOME")!;
  try {
    // HOME is this test's own folder, so the cache the command makes is inside it.
    Deno.env.set("HOME", dir);
    const code = await main(pipeline, ["gc", "--cache=~/cache", "--json"]);
    assertEquals(code, 0);
    assert((await Deno.stat(join(dir, "cache"))).isDirectory, "the cache was made under HOME");
  } finally {
    Deno.env.set("HOME", previous);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a path that names the home directory without HOME set is a config error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-home-" });
  const previous = Deno.env.get("HOME")!;
  try {
    const file = await writeConfig(dir, "~/photos");
    Deno.env.delete("HOME");
    const e = await assertRejects(() => loadConfig(pipeline, file));
    assert(e instanceof ConfigError, `${e}`);
    assertStringIncludes(e.message, "dataset.path: ~/photos names the home directory (~)");
  } finally {
    Deno.env.set("HOME", previous);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a misspelt field is answered with the nearest known one", async () => {
  const cases: [string[], string][] = [
    [["optimize.max_step=60"], "unknown field in optimize: max_step (did you mean max_steps?)"],
    [["optimize.pateince=3"], "unknown field in optimize: pateince (did you mean patience?)"],
    [["modle.preset=sd15"], "unknown field: modle (did you mean model?)"],
    // Nothing near: no guess.
    [["optimize.colour=1"], "unknown field in optimize: colour\n"],
  ];
  for (const [sets, expected] of cases) {
    const e = await assertRejects(
      () => loadConfig(pipeline, "config/ffhq.json", sets),
    );
    assert(e instanceof ConfigError, `${e}`);
    assertStringIncludes(`${e.message}\n`, expected, sets.join(" "));
  }
  // The fields of the dataset's own kind: a folder has `path` (an ffhq spec has one too).
  const folder = await assertRejects(
    () => loadConfig(pipeline, "config/bsds500.json", ["dataset.pth=x"]),
  );
  assertStringIncludes(folder.message, "unknown field in dataset: pth (did you mean path?)");
});

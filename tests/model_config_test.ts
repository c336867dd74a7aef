/**
 * The `model` section: presets fill the normalization and input range, explicit fields win,
 * `scaling_factor` has no default (a config error, exit 2, naming the field), action keys hold
 * the resolved numbers rather than the preset's name, and the README's preset table holds the
 * numbers the code uses.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { pipeline } from "../pipeline.ts";
import { ConfigError, configSlice, loadConfig } from "../lib/dag/config.ts";
import { PRESET_NAMES, PRESETS } from "../lib/model/presets.ts";
import type { Config } from "../config/schema.ts";
import encode from "../tasks/encode.ts";
import optimize from "../tasks/optimize.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));

async function withModel(model: Record<string, unknown>): Promise<Config> {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "config.json");
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        dataset: { kind: "folder", path: "images" },
        model: { encoder: { path: "e.onnx" }, decoder: { path: "d.onnx" }, ...model },
      }),
    );
    return await loadConfig(pipeline, path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function configError(model: Record<string, unknown>): Promise<string> {
  try {
    await withModel(model);
  } catch (e) {
    assert(e instanceof ConfigError, `expected a ConfigError, found ${e}`);
    return e.message;
  }
  throw new Error(`the config ${JSON.stringify(model)} was accepted`);
}

Deno.test("model config: a preset fills scale, shift and input range; explicit fields win", async () => {
  const flux = (await withModel({ preset: "flux1" })).model;
  assertEquals([flux.scaling_factor, flux.shift_factor, flux.input_range], [0.3611, 0.1159, [
    -1,
    1,
  ]]);
  const sd3 = (await withModel({ preset: "sd3" })).model;
  assertEquals([sd3.scaling_factor, sd3.shift_factor], [1.5305, 0.0609]);
  const tiny = (await withModel({ preset: "taesd" })).model;
  assertEquals([tiny.scaling_factor, tiny.shift_factor, tiny.input_range], [1, 0, [0, 1]]);
  const flux2 = (await withModel({ preset: "flux2" })).model;
  assertEquals([flux2.scaling_factor, flux2.latents_mean, flux2.latents_std], [
    1,
    undefined,
    undefined,
  ]);
  const given = (await withModel({
    preset: "flux2",
    latents_mean: Array(32).fill(0.1),
    latents_std: Array(32).fill(2),
  })).model;
  assertEquals(given.latents_std?.length, 32);
  const overridden = (await withModel({ preset: "sd15", scaling_factor: 0.2, input_range: [0, 1] }))
    .model;
  assertEquals([overridden.scaling_factor, overridden.input_range], [0.2, [0, 1]]);
  const explicit = (await withModel({ scaling_factor: 0.5 })).model;
  assertEquals([explicit.shift_factor, explicit.input_range], [0, [-1, 1]]);
});

Deno.test("model config: action keys hold the resolved numbers, not the preset's name", async () => {
  const byPreset = await withModel({ preset: "sd15" });
  const byNumber = await withModel({ scaling_factor: 0.18215 });
  const sdxl = await withModel({ preset: "sdxl" });
  for (const task of [encode, optimize]) {
    const slice = configSlice(byPreset, task.config);
    assert(!Object.keys(slice).some((k) => k.includes("preset")), `${task.name} keys the name`);
    assertEquals(slice, configSlice(byNumber, task.config), `${task.name}: same numbers`);
    assert(
      JSON.stringify(slice) !== JSON.stringify(configSlice(sdxl, task.config)),
      `${task.name}: SD v1 and SDXL differ`,
    );
  }
});

Deno.test("model config: no preset and no scaling factor, and other contradictions, name the field", async () => {
  assertStringIncludes(
    await configError({}),
    "model.scaling_factor: required: name the VAE with model.preset (sd15, sd21, sdxl",
  );
  assertStringIncludes(
    await configError({ scaling_factor: 1, latents_mean: [0, 0, 0, 0] }),
    "model.latents_std: expected latents_mean and latents_std together",
  );
  assertStringIncludes(
    await configError({ preset: "sd3", latents_mean: [0, 0], latents_std: [1, 1] }),
    "model.latents_mean: expected 16 values (preset sd3 has 16 latent channels), found 2",
  );
  assertStringIncludes(
    await configError({ scaling_factor: 1, latents_mean: [0, 0], latents_std: [1] }),
    "model.latents_std: expected as many values as latents_mean (2), found 1",
  );
  assertStringIncludes(await configError({ preset: "sd4" }), "model.preset");
  assertStringIncludes(
    await configError({ scaling_factor: 1, providers: ["cuda", "metal"] }),
    "model.providers.1",
  );
});

Deno.test("model config: the command line exits 2 naming model.scaling_factor", async () => {
  const p = await PipelineProject.create({
    dataset: { kind: "folder", path: "images" },
    model: { encoder: { path: "e.onnx" }, decoder: { path: "d.onnx" } },
  });
  try {
    const r = await p.run(["run", "encode"]);
    assertEquals(r.code, 2, r.stderr);
    assertStringIncludes(r.stderr, "model.scaling_factor: required");
    assert(!r.stderr.includes("    at "), "no stack trace");
  } finally {
    await p.cleanup();
  }
});

Deno.test("model config: the README's preset table holds the numbers the presets use", async () => {
  const readme = await Deno.readTextFile(join(REPO, "README.md"));
  for (const name of PRESET_NAMES) {
    const row = readme.split("\n").find((l) => new RegExp(`^\\| \`${name}\` +\\|`).test(l));
    assert(row, `README has a row for preset ${name}`);
    const cells = row.split("|").map((c) => c.trim());
    const p = PRESETS[name];
    assertEquals(Number(cells[2]), p.scalingFactor, `${name} scaling_factor`);
    assertEquals(Number(cells[3]), p.shiftFactor, `${name} shift_factor`);
    assertEquals(cells[4], `[${p.inputRange.join(", ")}]`, `${name} input range`);
    assertEquals(Number(cells[5]), p.latentChannels, `${name} channels`);
    assertEquals(cells[6], `${p.spatialFactor}×`, `${name} factor`);
  }
});

import { assertEquals, assertRejects } from "./fixtures/assert.ts";
import { loadConfig } from "../lib/dag/config.ts";
import { pipeline } from "../pipeline.ts";

Deno.test("the shipped configs validate and fill in defaults", async () => {
  const ffhq = await loadConfig(pipeline, "config/ffhq.json");
  assertEquals(ffhq.dataset.kind, "ffhq");
  assertEquals(ffhq.optimize.lr, 0.1);
  assertEquals(ffhq.optimize.warmup_steps, 0);
  assertEquals(ffhq.package.formats, ["npz", "hdf5", "safetensors"]);
  const bsds = await loadConfig(pipeline, "config/bsds500.json");
  assertEquals(bsds.dataset.kind, "folder");
  assertEquals(bsds.labels, null);
  assertEquals(bsds.download.concurrency_per_host, 16);
});

Deno.test("config errors name the field, the expectation and what was found", async () => {
  await assertRejects(
    () => loadConfig(pipeline, "config/ffhq.json", ["optimize.lr=-0.5"]),
    "optimize.lr: Too small: expected number to be >0 (found -0.5)",
  );
  await assertRejects(
    () => loadConfig(pipeline, "config/ffhq.json", ["optimize.loss=l3"]),
    'optimize.loss: Invalid option: expected one of "l2"|"l1"|"charbonnier" (found "l3")',
  );
  await assertRejects(
    () => loadConfig(pipeline, "config/ffhq.json", ["optimize.learning_rate=0.1"]),
    "unknown field in optimize: learning_rate",
  );
  await assertRejects(
    () => loadConfig(pipeline, "config/ffhq.json", ["preprocess.size=100"]),
    "preprocess.size: Invalid number: must be a multiple of 8 (found 100)",
  );
  await assertRejects(
    () => loadConfig(pipeline, "config/nope.json"),
    "cannot read config config/nope.json",
  );
});

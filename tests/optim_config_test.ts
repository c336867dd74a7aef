/**
 * The `optimize` section: each method's defaults, the pass budget, and the fields that cannot
 * work together, refused at validation with the field, what was expected and what was found.
 */
import { assertEquals, assertRejects } from "./fixtures/assert.ts";
import { configSlice, loadConfig } from "../lib/dag/config.ts";
import { ConfigSchema } from "../config/schema.ts";
import { pipeline } from "../pipeline.ts";
import optimize from "../tasks/optimize.ts";

Deno.test("lr defaults to each method's own: Adam 0.1, L-BFGS 1; no pass budget", async () => {
  const raw = JSON.parse(await Deno.readTextFile("config/bsds500.json"));
  const parse = (o: Record<string, unknown>) =>
    ConfigSchema.parse({ ...raw, optimize: o }).optimize;
  const adam = parse({});
  assertEquals([adam.method, adam.lr, adam.max_passes, adam.lbfgs], [
    "gradient",
    0.1,
    null,
    undefined,
  ]);
  const lbfgs = parse({ method: "lbfgs", max_passes: 40 });
  assertEquals([lbfgs.lr, lbfgs.lbfgs?.history, lbfgs.max_passes], [1, 10, 40]);
  assertEquals(parse({ method: "lbfgs", lr: 0.5 }).lr, 0.5);
  assertEquals(parse({ method: "gradient_free" }).lr, 0.1);
  // A config that names its lr keeps it whatever the method.
  const ffhq = await loadConfig(pipeline, "config/ffhq.json", ["optimize.method=lbfgs"]);
  assertEquals(ffhq.optimize.lr, 0.1);
});

Deno.test("the key holds what the method reads: lbfgs settings only for L-BFGS, no batch", async () => {
  const raw = JSON.parse(await Deno.readTextFile("config/bsds500.json"));
  const slice = (o: Record<string, unknown>) =>
    configSlice(ConfigSchema.parse({ ...raw, optimize: o }), optimize.config);
  const adam = slice({ lbfgs: { history: 30 }, batch_size: 8, checkpoint_every: 3 });
  assertEquals(Object.keys(adam).filter((k) => /lbfgs|batch|checkpoint/.test(k)), []);
  assertEquals(adam, slice({}), "neither L-BFGS's memory nor batch or cadence change Adam's key");
  const lbfgs = slice({ method: "lbfgs", lbfgs: { history: 30 } });
  assertEquals([lbfgs["optimize.lbfgs.history"], lbfgs["optimize.lr"]], [30, 1]);
});

Deno.test("a schedule asked of L-BFGS, or a warm-up longer than the budget, is refused", async () => {
  await assertRejects(
    () => loadConfig(pipeline, "config/demo.json", ["optimize.method=lbfgs"]),
    'optimize.schedule: expected "constant" with optimize.method "lbfgs" (its line search sets ' +
      'the length of every step) (found "cosine")',
  );
  await assertRejects(
    () =>
      loadConfig(pipeline, "config/demo.json", [
        "optimize.method=lbfgs",
        "optimize.schedule=constant",
      ]),
    'optimize.warmup_steps: expected 0 with optimize.method "lbfgs"',
  );
  await assertRejects(
    () => loadConfig(pipeline, "config/demo.json", ["optimize.max_passes=6"]),
    "optimize.warmup_steps: expected fewer warm-up steps than the 5 updates optimize.max_passes " +
      "(6) allows (found 5)",
  );
  await loadConfig(pipeline, "config/demo.json", ["optimize.max_passes=7"]);
  await assertRejects(
    () => loadConfig(pipeline, "config/demo.json", ["optimize.max_passes=0"]),
    "optimize.max_passes: Too small: expected number to be >0 (found 0)",
  );
});

import { relative, resolve } from "node:path";
import { assert, assertRejects } from "./fixtures/assert.ts";
import { loadConfig } from "../lib/dag/config.ts";
import { pipeline } from "../pipeline.ts";

Deno.test("fields that cannot work together are refused at validation, naming both", async () => {
  await assertRejects(
    () => loadConfig(pipeline, "config/demo.json", ["optimize.max_steps=3"]),
    "optimize.warmup_steps: expected fewer warm-up steps than optimize.max_steps (3) (found 5)",
  );
  await assertRejects(
    () => loadConfig(pipeline, "config/demo.json", ["optimize.max_steps=5"]),
    "expected fewer warm-up steps than optimize.max_steps (5)",
  );
  // No warm-up at all is fine with any max_steps.
  await loadConfig(pipeline, "config/demo.json", [
    "optimize.warmup_steps=0",
    "optimize.max_steps=1",
  ]);
  await assertRejects(
    () => loadConfig(pipeline, "config/demo.json", ["model.input_range=[1,-1]"]),
    "model.input_range: expected [low, high] with low < high (found [1,-1])",
  );
});

Deno.test("the shipped configs publish to distinct folders, none inside another", async () => {
  const dirs = new Map<string, string>();
  for await (const e of Deno.readDir("config")) {
    if (!e.name.endsWith(".json")) continue;
    const config = await loadConfig(pipeline, `config/${e.name}`);
    dirs.set(e.name, resolve(config.package.out_dir));
  }
  const fallback = pipeline.schema.safeParse({
    dataset: { kind: "folder", path: "x" },
    model: { encoder: { path: "e" }, decoder: { path: "d" }, scaling_factor: 1 },
  });
  assert(fallback.success);
  dirs.set("(default)", resolve(fallback.data.package.out_dir));
  assert(dirs.size >= 4, `configs: ${[...dirs.keys()]}`);
  for (const [a, dirA] of dirs) {
    for (const [b, dirB] of dirs) {
      if (a === b) continue;
      const rel = relative(dirA, dirB);
      assert(
        rel !== "" && (rel.startsWith("..") || rel.startsWith("/")),
        `${a} publishes to ${dirA}, which is or holds ${b}'s ${dirB}`,
      );
    }
  }
  assert(dirs.get("ffhq.json")!.endsWith("/out/ffhq"));
});

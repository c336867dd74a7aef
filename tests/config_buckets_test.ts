import { assertEquals, assertRejects } from "./fixtures/assert.ts";
import { loadConfig } from "../lib/dag/config.ts";
import { pipeline } from "../pipeline.ts";

Deno.test("bucket, flip and layout settings: defaults, and errors that name the field", async () => {
  const config = await loadConfig(pipeline, "config/ffhq.json", ["preprocess.crop=buckets"]);
  assertEquals(config.preprocess.buckets, { step: 64, no_upscale: false });
  assertEquals(config.preprocess.flip, false);
  assertEquals(config.package.layout, "split");
  assertEquals(config.package.shard_size, undefined);
  const shards = await loadConfig(pipeline, "config/ffhq.json", [
    "package.layout=shards",
    "package.shard_size=256MB",
  ]);
  assertEquals(shards.package.shard_size, "256MB");
  await assertRejects(
    () =>
      loadConfig(pipeline, "config/ffhq.json", [
        "preprocess.crop=buckets",
        "preprocess.buckets.min_side=100",
      ]),
    "preprocess.buckets.min_side: expected a positive multiple of step 64 (found 100)",
  );
  // Bucket settings are checked only where buckets are used.
  await loadConfig(pipeline, "config/ffhq.json", ["preprocess.buckets.min_side=100"]);
  await assertRejects(
    () => loadConfig(pipeline, "config/ffhq.json", ["package.shard_size=1000"]),
    'package.shard_size: expected only with package.layout "shards" (found 1000)',
  );
  await assertRejects(
    () =>
      loadConfig(pipeline, "config/ffhq.json", ["package.layout=shards", "package.shard_size=big"]),
    'package.shard_size: expected a size such as "256MB" or "1GiB"',
  );
  await assertRejects(
    () => loadConfig(pipeline, "config/ffhq.json", ["preprocess.crop=bucket"]),
    'preprocess.crop: Invalid option: expected one of "center"|"none"|"buckets" (found "bucket")',
  );
});

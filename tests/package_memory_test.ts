import { assert, assertEquals } from "./fixtures/assert.ts";

const CHILD = new URL("./fixtures/package_memory_child.ts", import.meta.url).pathname;
const IMAGES = 200_000;
/** Heap growth a streaming writer stays under, whatever the number of images. */
const BOUND = 24 * 1024 * 1024;

async function heapGrowth(mode: "stream" | "held") {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", CHILD, String(IMAGES), mode],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert(out.success, `the child failed: ${stderr}`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim()) as {
    growth: number;
    held: number;
    manifestBytes: number;
    metricsBytes: number;
  };
}

Deno.test("package writes manifest.json and metrics.csv of 200,000 images in flat memory", async () => {
  const streamed = await heapGrowth("stream");
  const held = await heapGrowth("held");
  const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MB`;
  console.log(
    `heap growth over ${IMAGES} images: streamed ${mb(streamed.growth)}, ` +
      `with the images held in a Map ${mb(held.growth)}; manifest.json ${
        mb(streamed.manifestBytes)
      }, metrics.csv ${mb(streamed.metricsBytes)}`,
  );
  assertEquals(held.held, IMAGES);
  // The files are many times the bound: they were not held on the way.
  assert(streamed.manifestBytes > 4 * BOUND, `manifest.json is only ${streamed.manifestBytes} B`);
  assert(streamed.growth < BOUND, `streamed: the heap grew ${mb(streamed.growth)}`);
  // The bound means something: holding the images, as package did, exceeds it.
  assert(held.growth > BOUND, `held: the heap grew only ${mb(held.growth)}`);
});

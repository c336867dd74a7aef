/**
 * config/demo.json pins the spec and labels the demo's mirror serves, so plans of the demo
 * know them without fetching. The mirror is deterministic (seed 1, 64 images of 256 px, on
 * port 18421); if its generator changes, this test says the pins went stale.
 */
import { createHash } from "node:crypto";
import { assertEquals } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";

const DEMO_ORIGIN = "http://127.0.0.1:18421";

Deno.test("config/demo.json pins the sha256 of the spec and labels the demo mirror serves", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../config/demo.json", import.meta.url)),
  );
  // Served elsewhere, so the demo's own port stays free; the spec names its images by URL.
  const mirror = await startMirror({ count: 64, imageSize: 256, seed: 1 });
  try {
    const spec = new TextDecoder().decode(mirror.specBytes).replaceAll(mirror.origin, DEMO_ORIGIN);
    const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
    assertEquals(config.dataset.spec.url, `${DEMO_ORIGIN}/ffhq-dataset-v2.json`);
    assertEquals(config.dataset.spec.sha256, sha256(spec), "dataset.spec.sha256 is stale");
    assertEquals(config.labels.source.url, `${DEMO_ORIGIN}/ffhq-aging-labels.csv`);
    assertEquals(
      config.labels.source.sha256,
      sha256(mirror.labelsCsv),
      "labels.source.sha256 is stale",
    );
  } finally {
    await mirror.close();
  }
});

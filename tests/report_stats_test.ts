import assert from "node:assert/strict";
import { lossBands, median, niceTicks, quantile } from "../lib/report/stats.ts";
import { escapeHtml } from "../lib/report/escape.ts";
import { encodeBase64 } from "../lib/report/base64.ts";

Deno.test("quantile interpolates linearly like numpy.quantile", () => {
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantile([10, 20, 30, 40, 50], 0.1), 14);
  assert.equal(quantile([10, 20, 30, 40, 50], 0.9), 46);
  assert.equal(quantile([7], 0.25), 7);
  assert.ok(Number.isNaN(quantile([], 0.5)));
  assert.equal(median([5, 1, 3]), 3);
});

Deno.test("niceTicks covers the range with round steps", () => {
  assert.deepEqual(niceTicks(0.3, 9.2, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0.62, 0.92, 6), [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]);
  assert.deepEqual(niceTicks(18.4, 35.9, 4), [15, 20, 25, 30, 35, 40]);
  const flat = niceTicks(3, 3, 4);
  assert.ok(flat[0] < 3 && flat[flat.length - 1] > 3, `range around 3, found ${flat}`);
});

Deno.test("lossBands holds a stopped image at its final loss and starts images at their first step", () => {
  const bands = lossBands([
    [[0, 10], [10, 5], [20, 1]],
    [[0, 8], [10, 2]], // stopped at step 10
    [[10, 4], [20, 3]], // first recorded at step 10
  ], 3);
  assert.deepEqual(bands.steps, [0, 10, 20]);
  assert.deepEqual(bands.count, [2, 3, 3]);
  assert.deepEqual(bands.q50, [9, 4, 2]);
  assert.deepEqual(bands.q10.map((v) => Number(v.toFixed(6))), [8.2, 2.4, 1.2]);
  assert.deepEqual(bands.q90.map((v) => Number(v.toFixed(6))), [9.8, 4.8, 2.8]);
});

Deno.test("lossBands reduces long curves to the requested number of grid steps", () => {
  const curve = Array.from({ length: 1001 }, (_, s) => [s, 1 / (1 + s)] as [number, number]);
  const bands = lossBands([curve], 101);
  assert.equal(bands.steps.length, 101);
  assert.equal(bands.steps[100], 1000);
  assert.equal(bands.q50[50], 1 / 501);
  assert.deepEqual(lossBands([]).steps, []);
});

Deno.test("escapeHtml escapes markup and quotes", () => {
  assert.equal(
    escapeHtml(`<a href="x" title='y'>&amp;</a>`),
    "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;",
  );
});

Deno.test("encodeBase64 matches the standard encoding, also for large inputs", async () => {
  assert.equal(encodeBase64(new Uint8Array([0x89, 0x50, 0x4e, 0x47])), "iVBORw==");
  const big = new Uint8Array(100_003).map((_, i) => (i * 31) & 0xff);
  const { Buffer } = await import("node:buffer");
  assert.equal(encodeBase64(big), Buffer.from(big).toString("base64"));
});

import { assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { renderBucketSection, summarizeBuckets } from "../lib/report/buckets_section.ts";

Deno.test("bucket section: images and PSNR gain per bucket, portrait to landscape", () => {
  const images = [
    { bucket: "1024x256", psnrInitial: 20, psnrFinal: 23 },
    { bucket: "256x256", psnrInitial: 20, psnrFinal: 21 },
    { bucket: "256x256", psnrInitial: 22, psnrFinal: 24 },
    { bucket: "256x256", psnrInitial: 24, psnrFinal: 24.5 },
    { bucket: "192x320", psnrInitial: 30, psnrFinal: 30.25 },
  ];
  const rows = summarizeBuckets(images);
  assertEquals(rows.map((r) => [r.bucket, r.images]), [["192x320", 1], ["256x256", 3], [
    "1024x256",
    1,
  ]]);
  assertEquals(rows[1].meanPsnrInitial, 22);
  assertEquals(rows[1].meanGain, (1 + 2 + 0.5) / 3);
  assertEquals(rows[1].medianGain, 1);
  const html = renderBucketSection(images);
  assertStringIncludes(html, "<h2>Buckets</h2>");
  assertStringIncludes(html, '<td>1024×256</td><td class="num">1</td><td class="num">20.00</td>');
  assertStringIncludes(html, "+3.00");
  assertEquals(renderBucketSection([]), "");
});

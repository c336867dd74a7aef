import { assert, assertEquals, assertThrows } from "./fixtures/assert.ts";
import {
  bucketForImage,
  bucketName,
  bucketResolutions,
  coverCrop,
  mirrorCrop,
  nearestBucket,
  parseBucketName,
  resolveBucketOptions,
} from "../lib/image/buckets.ts";
import { seededRandom } from "../lib/base/random.ts";

Deno.test("bucket set for 256² in steps of 64: every width with its tallest height, transposes and the square", () => {
  assertEquals(
    bucketResolutions({ area: 256 * 256, step: 64 }).map(bucketName),
    [
      "128x512",
      "128x448",
      "128x384",
      "192x320",
      "256x256",
      "320x192",
      "384x128",
      "448x128",
      "512x128",
    ],
  );
  // kohya's defaults for SD 1.x: 512², step 64, sides 256…1024.
  const sd = bucketResolutions({ area: 512 * 512, step: 64, minSide: 256, maxSide: 1024 });
  for (const b of sd) {
    assert(b.width % 64 === 0 && b.height % 64 === 0, `${bucketName(b)} in steps of 64`);
    assert(b.width * b.height <= 512 * 512, `${bucketName(b)} within the area`);
    assert(Math.min(b.width, b.height) >= 256 && Math.max(b.width, b.height) <= 1024);
  }
  assert(sd.some((b) => b.width === 512 && b.height === 512));
  assert(sd.some((b) => b.width === 768 && b.height === 320));
  assert(sd.some((b) => b.width === 1024 && b.height === 256));
});

Deno.test("an image goes to the bucket nearest in log aspect ratio, 2:1 and 1:2 alike", () => {
  const buckets = bucketResolutions({ area: 256 * 256, step: 64 });
  assertEquals(nearestBucket(481, 321, buckets), { width: 320, height: 192 });
  assertEquals(nearestBucket(321, 481, buckets), { width: 192, height: 320 });
  assertEquals(nearestBucket(1000, 1000, buckets), { width: 256, height: 256 });
  // 1.31 is nearer 5/3 than 1 in log ratio (0.241 vs 0.270), though not in linear ratio.
  const two = [{ width: 256, height: 256 }, { width: 320, height: 192 }];
  assertEquals(nearestBucket(655, 500, two), { width: 320, height: 192 });
  // Random sizes: the chosen bucket is never farther than any other.
  const rnd = seededRandom(16);
  for (let i = 0; i < 200; i++) {
    const w = 16 + Math.floor(rnd() * 2000);
    const h = 16 + Math.floor(rnd() * 2000);
    const chosen = nearestBucket(w, h, buckets);
    const d = (b: { width: number; height: number }) =>
      Math.abs(Math.log(b.width / b.height) - Math.log(w / h));
    for (const b of buckets) assert(d(chosen) <= d(b) + 1e-12, `${w}×${h}: ${bucketName(b)}`);
  }
});

Deno.test("cover and center crop: resized to cover the bucket, cropped by at most the remainder", () => {
  const c = coverCrop(481, 321, { width: 320, height: 192 });
  assertEquals(c.box, { top: 16, left: 0, height: 289, width: 481 });
  assertEquals(c.cropTopLeft, [11, 0]);
  const rnd = seededRandom(7);
  const buckets = bucketResolutions({ area: 128 * 128, step: 16 });
  for (let i = 0; i < 300; i++) {
    const w = 8 + Math.floor(rnd() * 1500);
    const h = 8 + Math.floor(rnd() * 1500);
    const b = nearestBucket(w, h, buckets);
    const { box, scale } = coverCrop(w, h, b);
    // One side is kept whole; the other keeps the bucket's aspect to within a pixel.
    assert(box.width === w || box.height === h, `${w}×${h} → ${bucketName(b)}: a side kept`);
    assert(Math.abs(box.width * scale - b.width) <= scale + 1e-9, `${w}×${h} width`);
    assert(Math.abs(box.height * scale - b.height) <= scale + 1e-9, `${w}×${h} height`);
    // Centered: the two margins differ by at most one pixel.
    const right = w - box.left - box.width;
    const bottom = h - box.top - box.height;
    assert(right - box.left === 0 || right - box.left === 1, `${w}×${h} centered horizontally`);
    assert(bottom - box.top === 0 || bottom - box.top === 1, `${w}×${h} centered vertically`);
  }
  const m = mirrorCrop(coverCrop(101, 50, { width: 64, height: 64 }), 101);
  assertEquals(m.box, { top: 0, left: 26, height: 50, width: 50 });
});

Deno.test("no upscale: an image's own size, shrunk to the area, rounded down to the step", () => {
  const opts = { area: 256 * 256, step: 64, noUpscale: true };
  assertEquals(bucketForImage(481, 321, opts), { width: 256, height: 192 });
  assertEquals(bucketForImage(300, 200, opts), { width: 256, height: 192 });
  assertEquals(bucketForImage(200, 150, { ...opts, step: 16, minSide: 64 }), {
    width: 192,
    height: 144,
  });
  const small = assertThrows(() => bucketForImage(100, 600, opts), "min_side 128");
  assert(small.message.includes("100×600"), small.message);
  // Without no_upscale the same small image is enlarged into a bucket.
  assertEquals(bucketForImage(100, 600, { area: 256 * 256, step: 64 }), {
    width: 128,
    height: 512,
  });
});

Deno.test("bucket options: defaults from the area, and errors that say expected versus found", () => {
  assertEquals(resolveBucketOptions({ area: 256 * 256 }), {
    area: 65536,
    step: 64,
    minSide: 128,
    maxSide: 512,
    noUpscale: false,
  });
  assertThrows(() => resolveBucketOptions({ area: 4096, step: 0 }), "positive integer, found 0");
  assertThrows(() => resolveBucketOptions({ area: 100, step: 64 }), "at least step² = 4096");
  assertThrows(
    () => resolveBucketOptions({ area: 65536, step: 64, minSide: 100 }),
    "multiple of step 64, found 100",
  );
  assertThrows(
    () => resolveBucketOptions({ area: 65536, step: 64, minSide: 512, maxSide: 256 }),
    "at most max_side 256",
  );
  assertEquals(parseBucketName("320x192"), { width: 320, height: 192 });
  assertThrows(() => parseBucketName("320×192"), 'found "320×192"');
});

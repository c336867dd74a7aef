import sharp from "sharp";
import { assert, assertEquals, assertRejects } from "./fixtures/assert.ts";
import { BucketError, preprocessImage, PreprocessOptionsError } from "../lib/image/preprocess.ts";

/** A 8-bit RGB PNG whose pixel (x, y) is a function of its position. */
async function png(width: number, height: number, pixel: (x: number, y: number) => number[]) {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 3);
  }
  return new Uint8Array(
    await sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer(),
  );
}

/** Smooth but asymmetric content, so a mirror or a shifted crop shows. */
const scene = (x: number, y: number) => [
  (x * 7 + y * 3) % 256,
  (x * x + 2 * y) % 256,
  Math.floor(128 + 100 * Math.sin(x / 9) * Math.cos(y / 13)),
];

Deno.test("buckets: a 481×321 photo keeps its aspect in the 320x192 bucket, cropped by the remainder only", async () => {
  const image = await png(481, 321, scene);
  // libpng's decode, so the comparison below is against sharp reading the same PNG.
  const out = await preprocessImage(image, {
    size: 256,
    crop: "buckets",
    buckets: { step: 64 },
    fastPng: false,
  });
  assertEquals(out.shape, [1, 3, 192, 320]);
  assertEquals(out.bucket, "320x192");
  assertEquals(out.conditioning, {
    original_size: [321, 481],
    crop_coords_top_left: [11, 0],
    crop_box: [16, 0, 305, 481],
    target_size: [192, 320],
  });
  assertEquals(out.flipped, false);
  // Exactly sharp's own lanczos3 resize of the recorded crop box, of the decoded pixels.
  const decoded = await sharp(image).raw().toBuffer({ resolveWithObject: true });
  const { width, height, channels } = decoded.info;
  const expected = await sharp(decoded.data, { raw: { width, height, channels: channels as 3 } })
    .extract({ left: 0, top: 16, width: 481, height: 289 })
    .resize(320, 192, { kernel: "lanczos3", fit: "fill" })
    .raw()
    .toBuffer();
  assertEquals(
    new Uint8Array(await sharp(out.previewPng).raw().toBuffer()),
    new Uint8Array(expected),
  );
  // The tensor holds those pixels, planar, in [-1, 1].
  const plane = 192 * 320;
  for (const i of [0, 1234, plane - 1]) {
    for (let c = 0; c < 3; c++) {
      assertEquals(Math.round((out.tensor[c * plane + i] + 1) * 127.5), expected[i * 3 + c]);
    }
  }
  // A center crop of the same photo loses a third of it: 321 of 481 columns kept.
  const center = await preprocessImage(image, { size: 256 });
  assertEquals(center.bucket, "256x256");
  assertEquals(center.conditioning.crop_box, [0, 80, 321, 401]);
  assertEquals(center.conditioning.crop_coords_top_left, [0, 64]);
  const none = await preprocessImage(image, { size: 64, crop: "none" });
  assertEquals(none.conditioning.crop_box, [0, 0, 321, 481]);
  assertEquals(none.conditioning.crop_coords_top_left, [0, 0]);
  assertEquals(none.conditioning.target_size, [64, 64]);
});

Deno.test("flip: the flipped tensor is the exact mirror of the unflipped one; its crop box is mirrored", async () => {
  // 101×50 with crop center 32: keeps 50 columns from x = 25, so 26 are left out on the right.
  const image = await png(101, 50, scene);
  const plain = await preprocessImage(image, { size: 32 });
  const flipped = await preprocessImage(image, { size: 32, flip: true });
  assertEquals(flipped.flipped, true);
  assertEquals(plain.conditioning.crop_box, [0, 25, 50, 75]);
  assertEquals(flipped.conditioning.crop_box, [0, 26, 50, 76]);
  assertEquals(flipped.conditioning.crop_coords_top_left, [0, Math.round(26 * 32 / 50)]);
  assertEquals(flipped.conditioning.original_size, plain.conditioning.original_size);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        const a = plain.tensor[c * 1024 + y * 32 + x];
        const b = flipped.tensor[c * 1024 + y * 32 + (31 - x)];
        if (a !== b) throw new Error(`channel ${c} (${x}, ${y}): ${a} is not mirrored as ${b}`);
      }
    }
  }
  // And in a bucket: a tall image, flipped.
  const tall = await png(60, 150, scene);
  const t = await preprocessImage(tall, {
    size: 64,
    crop: "buckets",
    buckets: { step: 16 },
    flip: true,
  });
  assertEquals(t.bucket, "32x96");
  assertEquals(t.shape, [1, 3, 96, 32]);
});

Deno.test("original_size is the size after EXIF orientation, so a rotated portrait gets a portrait bucket", async () => {
  // Stored 160×96 landscape, displayed as 96×160 portrait (orientation 6: rotate 90° clockwise).
  const stored = await png(160, 96, scene);
  const jpeg = await sharp(stored).jpeg({ quality: 95 }).withMetadata({ orientation: 6 })
    .toBuffer();
  const out = await preprocessImage(jpeg, { size: 64, crop: "buckets", buckets: { step: 16 } });
  assertEquals(out.conditioning.original_size, [160, 96]);
  assert(out.shape[2] > out.shape[3], `portrait bucket, found ${out.bucket}`);
});

Deno.test("buckets: an image too small without upscaling is refused by name; bad bucket options are refused first", async () => {
  const small = await png(40, 200, scene);
  const error = await assertRejects(() =>
    preprocessImage(small, {
      size: 128,
      crop: "buckets",
      buckets: { step: 32, noUpscale: true },
      source: "image 7 (small.png)",
    })
  );
  assert(error instanceof BucketError, `expected a BucketError, found ${error.name}`);
  assert(error.message.startsWith("image 7 (small.png): image 40×200"), error.message);
  assert(error.message.includes("min_side 64"), error.message);
  const bad = await assertRejects(
    () =>
      preprocessImage(small, { size: 128, crop: "buckets", buckets: { step: 48, minSide: 40 } }),
    "multiple of step 48, found 40",
  );
  assert(
    bad instanceof PreprocessOptionsError,
    `expected PreprocessOptionsError, found ${bad.name}`,
  );
});

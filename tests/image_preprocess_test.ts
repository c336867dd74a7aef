import assert from "node:assert/strict";
import sharp, { type Sharp } from "sharp";
import {
  ImageDecodeError,
  preprocessImage,
  PreprocessOptionsError,
} from "../lib/image/preprocess.ts";
import { decodeNpy, encodeNpy } from "../lib/format/npy.ts";
import { PYTHON, pythonRequirement } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";

type Rgb = [number, number, number];

/** An 8-bit RGB(A) image from a function of the pixel position. */
function rawImage(
  width: number,
  height: number,
  channels: 1 | 3 | 4,
  pixel: (x: number, y: number) => number[],
): Sharp {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * channels);
  }
  return sharp(data, { raw: { width, height, channels } });
}

/** The 8-bit RGB value at (x, y) of a [1, 3, s, s] tensor in [-1, 1]. */
function at(tensor: Float32Array, size: number, x: number, y: number): Rgb {
  const i = y * size + x;
  const to8 = (v: number) => Math.round((v + 1) * 127.5);
  return [to8(tensor[i]), to8(tensor[size * size + i]), to8(tensor[2 * size * size + i])];
}

function assertNear(actual: Rgb, expected: Rgb, tolerance: number, what: string): void {
  const off = actual.some((v, c) => Math.abs(v - expected[c]) > tolerance);
  assert.ok(!off, `${what}: expected ≈[${expected}] (±${tolerance}), found [${actual}]`);
}

const RED: Rgb = [255, 0, 0];
const GREEN: Rgb = [0, 255, 0];
const BLUE: Rgb = [0, 0, 255];
const WHITE: Rgb = [255, 255, 255];

Deno.test("preprocess honours EXIF orientation 6 (stored image rotated 90° clockwise)", async () => {
  // Stored 120×80: quadrants red (top-left), green (top-right), blue (bottom-left), white.
  const stored = rawImage(
    120,
    80,
    3,
    (x, y) => y < 40 ? (x < 60 ? RED : GREEN) : (x < 60 ? BLUE : WHITE),
  );
  const jpeg = await stored.jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  assert.equal((await sharp(jpeg).metadata()).orientation, 6);

  const out = await preprocessImage(jpeg, { size: 64, crop: "none" });
  assert.equal(out.sourceWidth, 80);
  assert.equal(out.sourceHeight, 120);
  // Displayed: blue top-left, red top-right, white bottom-left, green bottom-right.
  assertNear(at(out.tensor, 64, 10, 10), BLUE, 12, "top-left");
  assertNear(at(out.tensor, 64, 53, 10), RED, 12, "top-right");
  assertNear(at(out.tensor, 64, 10, 53), WHITE, 12, "bottom-left");
  assertNear(at(out.tensor, 64, 53, 53), GREEN, 12, "bottom-right");
});

Deno.test("preprocess shows every EXIF orientation (1–8) upright", async () => {
  // One square picture stored eight times, each with another orientation tag: what is shown is
  // the stored image mirrored and turned as the tag says (x, y of the shown image → stored).
  const n = 96, size = 48;
  const stored = rawImage(n, n, 3, (x, y) => [x * 2, y * 2, (x * 5 + y * 3) % 256]);
  const shown: ((x: number, y: number) => [number, number])[] = [
    (x, y) => [x, y],
    (x, y) => [size - 1 - x, y],
    (x, y) => [size - 1 - x, size - 1 - y],
    (x, y) => [x, size - 1 - y],
    (x, y) => [y, x],
    (x, y) => [y, size - 1 - x],
    (x, y) => [size - 1 - y, size - 1 - x],
    (x, y) => [size - 1 - y, x],
  ];
  const tensors: Float32Array[] = [];
  for (let orientation = 1; orientation <= 8; orientation++) {
    const jpeg = await stored.clone().jpeg({ quality: 100 }).withMetadata({ orientation })
      .toBuffer();
    tensors.push((await preprocessImage(jpeg, { size, crop: "none" })).tensor);
  }
  const upright = tensors[0];
  for (let o = 2; o <= 8; o++) {
    let worst = 0;
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const [sx, sy] = shown[o - 1](x, y);
          const got = tensors[o - 1][c * size * size + y * size + x];
          worst = Math.max(worst, Math.abs(got - upright[c * size * size + sy * size + sx]));
        }
      }
    }
    // Resizing a turned image rounds a little differently: within one 8-bit step.
    assert.ok(worst * 127.5 <= 1.01, `orientation ${o}: off by ${worst * 127.5} 8-bit steps`);
  }
});

Deno.test("preprocess expands a 1-channel grayscale PNG to three equal planes", async () => {
  const png = await rawImage(64, 64, 1, (x) => [x * 4]).toColourspace("b-w").png().toBuffer();
  assert.equal((await sharp(png).metadata()).channels, 1);
  const { tensor, shape } = await preprocessImage(png, { size: 64 });
  assert.deepEqual(shape, [1, 3, 64, 64]);
  const plane = 64 * 64;
  for (let i = 0; i < plane; i++) {
    assert.equal(tensor[i], tensor[plane + i]);
    assert.equal(tensor[i], tensor[2 * plane + i]);
  }
  // Same size: the resize is the identity, so gray value x*4 comes through exactly.
  assert.deepEqual(at(tensor, 64, 10, 3), [40, 40, 40]);
  assert.deepEqual(at(tensor, 64, 63, 0), [252, 252, 252]);
});

Deno.test("preprocess reduces a 16-bit PNG to the same values as its 8-bit version", async () => {
  const eight = rawImage(32, 32, 3, (x, y) => [x * 8, y * 8, 200]);
  const png16 = await eight.clone().toColourspace("rgb16").png().toBuffer();
  const png8 = await eight.png().toBuffer();
  assert.equal((await sharp(png16).metadata()).depth, "ushort", "fixture must be 16-bit");
  const a = await preprocessImage(png16, { size: 32 });
  const b = await preprocessImage(png8, { size: 32 });
  assert.deepEqual(at(a.tensor, 32, 5, 9), [40, 72, 200]);
  let worst = 0;
  for (let i = 0; i < a.tensor.length; i++) {
    worst = Math.max(worst, Math.abs(a.tensor[i] - b.tensor[i]) * 127.5);
  }
  assert.ok(worst <= 1, `expected ≤ 1/255 apart, found ${worst}/255`);
});

Deno.test("preprocess decodes a palette PNG to its RGB colours", async () => {
  const colours: Rgb[] = [RED, GREEN, BLUE, [250, 200, 10]];
  const png = await (rawImage(64, 64, 3, (x, y) => colours[(x >> 5) + 2 * (y >> 5)]))
    .png({ palette: true, colours: 4, dither: 0 })
    .toBuffer();
  const meta = await sharp(png).metadata();
  assert.equal(meta.isPalette, true, "fixture must be a palette PNG");
  const { tensor } = await preprocessImage(png, { size: 64 });
  assert.deepEqual(at(tensor, 64, 5, 5), RED);
  assert.deepEqual(at(tensor, 64, 40, 5), GREEN);
  assert.deepEqual(at(tensor, 64, 5, 40), BLUE);
  assert.deepEqual(at(tensor, 64, 40, 40), [250, 200, 10]);
});

Deno.test("preprocess flattens alpha onto white", async () => {
  // Left: fully transparent black, middle: half-transparent red, right: opaque blue.
  const png = await (rawImage(
    48,
    48,
    4,
    (x) => x < 16 ? [0, 0, 0, 0] : x < 32 ? [255, 0, 0, 128] : [0, 0, 255, 255],
  )).png().toBuffer();
  assert.equal((await sharp(png).metadata()).hasAlpha, true);
  const { tensor } = await preprocessImage(png, { size: 48 });
  assert.deepEqual(at(tensor, 48, 4, 20), WHITE);
  assertNear(at(tensor, 48, 24, 20), [255, 127, 127], 1, "half-transparent red on white");
  assert.deepEqual(at(tensor, 48, 44, 20), BLUE);
});

Deno.test("preprocess center-crops a wide image to its middle square; crop none keeps all", async () => {
  // 300×100: red | green | blue thirds; the centered 100×100 square is exactly the green third.
  const png = await (rawImage(300, 100, 3, (x) => x < 100 ? RED : x < 200 ? GREEN : BLUE))
    .png().toBuffer();
  const center = await preprocessImage(png, { size: 32 });
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) assert.deepEqual(at(center.tensor, 32, x, y), GREEN);
  }
  const none = await preprocessImage(png, { size: 48, crop: "none" });
  assert.deepEqual(at(none.tensor, 48, 3, 24), RED);
  assert.deepEqual(at(none.tensor, 48, 24, 24), GREEN);
  assert.deepEqual(at(none.tensor, 48, 44, 24), BLUE);
});

Deno.test("preprocess output: Float32Array, [1,3,s,s], values in the input range, .npy round trip", async () => {
  const png = await (rawImage(200, 160, 3, (x, y) => [x & 0xff, y & 0xff, (x * y) & 0xff]))
    .png().toBuffer();
  const path = await Deno.makeTempFile({ suffix: ".png" });
  try {
    await Deno.writeFile(path, png);
    const fromPath = await preprocessImage(path, { size: 64, inputRange: [0, 1] });
    assert.ok(fromPath.tensor instanceof Float32Array);
    assert.deepEqual(fromPath.shape, [1, 3, 64, 64]);
    assert.equal(fromPath.tensor.length, 3 * 64 * 64);
    let min = Infinity;
    let max = -Infinity;
    for (const v of fromPath.tensor) [min, max] = [Math.min(min, v), Math.max(max, v)];
    assert.ok(min >= 0 && max <= 1, `expected values in [0, 1], found [${min}, ${max}]`);
    assert.ok(max - min > 0.5, "the gradient image must span much of the range");

    const fromBytes = await preprocessImage(png, { size: 64, inputRange: [-1, 1] });
    for (let i = 0; i < fromBytes.tensor.length; i += 97) {
      assert.ok(Math.abs(fromBytes.tensor[i] - (2 * fromPath.tensor[i] - 1)) < 1e-6);
    }
    const npy = encodeNpy({ dtype: "<f4", shape: fromBytes.shape, data: fromBytes.tensor });
    const back = decodeNpy(npy);
    assert.deepEqual(back.shape, [1, 3, 64, 64]);
    assert.deepEqual(back.data, fromBytes.tensor);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("preprocess maps black and white exactly to the bounds of the input range", async () => {
  const png = await (rawImage(16, 16, 3, (x) => x < 8 ? [0, 0, 0] : WHITE)).png().toBuffer();
  const { tensor } = await preprocessImage(png, { size: 16, inputRange: [-1, 1] });
  assert.equal(tensor[0], -1);
  assert.equal(tensor[15], 1);
});

Deno.test("preprocess resize equals sharp's own lanczos3 resize of the same crop, byte for byte", async () => {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="333" height="250">
    <defs><linearGradient id="g"><stop offset="0" stop-color="#123"/><stop offset="1" stop-color="#fc6"/></linearGradient></defs>
    <rect width="333" height="250" fill="url(#g)"/><circle cx="160" cy="120" r="70" fill="#2a9"/>
    <path d="M40 200 L300 30" stroke="#fff" stroke-width="5"/></svg>`;
  const png = await sharp(new TextEncoder().encode(svg)).png().toBuffer();
  const { tensor, previewPng } = await preprocessImage(png, { size: 64 });
  // Center square of 333×250 is 250×250 starting at x = floor(83 / 2) = 41.
  const expected = await sharp(png)
    .extract({ left: 41, top: 0, width: 250, height: 250 })
    .removeAlpha()
    .resize(64, 64, { kernel: "lanczos3" })
    .raw()
    .toBuffer();
  const preview = await sharp(previewPng).raw().toBuffer();
  assert.deepEqual(new Uint8Array(preview), new Uint8Array(expected));
  for (let y = 0; y < 64; y += 7) {
    for (let x = 0; x < 64; x += 5) {
      const j = (y * 64 + x) * 3;
      assert.deepEqual(at(tensor, 64, x, y), [expected[j], expected[j + 1], expected[j + 2]]);
    }
  }
});

const python = PYTHON;

testIf(pythonRequirement("PIL, numpy"), {
  name: "preprocess agrees with Pillow's LANCZOS center-crop resize within 0.25/255 on average",
  async fn() {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480">
      <rect width="640" height="480" fill="#345"/><circle cx="320" cy="240" r="150" fill="#e96"/>
      <rect x="250" y="100" width="40" height="300" fill="#fff"/></svg>`;
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/in.png`;
      await sharp(new TextEncoder().encode(svg)).removeAlpha().png().toFile(path);
      const ours = (await preprocessImage(path, { size: 128 })).tensor;
      const script = `
import sys, numpy as np
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
w, h = im.size; s = min(w, h); l = (w - s) // 2; t = (h - s) // 2
im = im.crop((l, t, l + s, t + s)).resize((128, 128), Image.LANCZOS)
a = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1
sys.stdout.buffer.write(a.astype("<f4").tobytes())`;
      const out = await new Deno.Command(python, { args: ["-c", script, path] }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const theirs = new Float32Array(out.stdout.slice().buffer);
      assert.equal(theirs.length, ours.length);
      let sum = 0;
      let worst = 0;
      for (let i = 0; i < ours.length; i++) {
        const d = Math.abs(ours[i] - theirs[i]) * 127.5;
        sum += d;
        worst = Math.max(worst, d);
      }
      const mean = sum / ours.length;
      console.log(`vs Pillow: mean |Δ| ${mean.toFixed(3)}/255, max ${worst.toFixed(1)}/255`);
      assert.ok(mean < 0.25, `mean |difference| ${mean.toFixed(3)}/255, expected < 0.25`);
      assert.ok(worst <= 24, `largest difference ${worst.toFixed(1)}/255, expected ≤ 24`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("preprocess names the reason when an image is truncated or not an image", async () => {
  const png = await (rawImage(200, 200, 3, (x, y) => [x, y, (x ^ y) & 0xff])).png()
    .toBuffer();
  await assert.rejects(
    preprocessImage(png.subarray(0, png.length - 400), { source: "00017.png" }),
    (e: Error) => {
      assert.ok(e instanceof ImageDecodeError);
      assert.equal(e.name, "ImageDecodeError");
      assert.match(e.message, /^00017\.png: cannot decode image: .*(libpng|png)/i);
      return true;
    },
  );
  const jpeg = await (rawImage(200, 200, 3, (x, y) => [x, y, 90])).jpeg().toBuffer();
  await assert.rejects(
    preprocessImage(jpeg.subarray(0, jpeg.length / 2), { source: "cut.jpg" }),
    (e: Error) =>
      e instanceof ImageDecodeError && /^cut\.jpg: .*premature end of JPEG/i.test(e.message),
  );
  await assert.rejects(
    preprocessImage(new TextEncoder().encode("<html>not found</html>")),
    (e: Error) =>
      e instanceof ImageDecodeError &&
      /^image bytes: cannot decode image: .*unsupported image format/.test(e.message),
  );
  await assert.rejects(
    preprocessImage("/nonexistent/00001.png"),
    (e: Error) => e instanceof ImageDecodeError && e.message.startsWith("/nonexistent/00001.png"),
  );
});

Deno.test("preprocess rejects sizes that are not multiples of 8", async () => {
  const png = await (rawImage(16, 16, 3, () => RED)).png().toBuffer();
  await assert.rejects(
    preprocessImage(png, { size: 100 }),
    PreprocessOptionsError,
    "size: expected a positive multiple of 8, found 100",
  );
});

import assert from "node:assert/strict";
import sharp from "sharp";
import { preprocessImage } from "../lib/image/preprocess.ts";
import { TensorImageError, tensorToPng } from "../lib/image/tensor_png.ts";

Deno.test("tensorToPng of a preprocessed tensor gives back the preview's pixels exactly", async () => {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="90" height="70">
    <rect width="90" height="70" fill="#248"/><circle cx="45" cy="35" r="25" fill="#fd4"/></svg>`;
  const png = await sharp(new TextEncoder().encode(svg)).png().toBuffer();
  for (const inputRange of [[-1, 1], [0, 1]] as const) {
    const { tensor, shape, previewPng } = await preprocessImage(png, { size: 32, inputRange });
    const rendered = await tensorToPng(tensor, shape, inputRange);
    const a = await sharp(rendered).raw().toBuffer({ resolveWithObject: true });
    const b = await sharp(previewPng).raw().toBuffer();
    assert.deepEqual([a.info.width, a.info.height, a.info.channels], [32, 32, 3]);
    assert.deepEqual(new Uint8Array(a.data), new Uint8Array(b));
  }
});

Deno.test("tensorToPng clamps out-of-range values and accepts [3, H, W]", async () => {
  // 2×1 image: pixel 0 is far below the range, pixel 1 far above; channel planes are [r0 r1 g0 g1 b0 b1].
  const tensor = new Float32Array([-7, 3, -1.5, 1.2, 0, -0.0001]);
  const png = await tensorToPng(tensor, [3, 1, 2]);
  const raw = new Uint8Array(await sharp(png).raw().toBuffer());
  assert.deepEqual([...raw], [0, 0, 128, 255, 255, 127]);
});

Deno.test("tensorToPng names the shape it expected", async () => {
  await assert.rejects(
    tensorToPng(new Float32Array(12), [1, 4, 1, 3]),
    TensorImageError,
    "expected shape [1, 3, H, W] or [3, H, W], found [1, 4, 1, 3]",
  );
  await assert.rejects(
    tensorToPng(new Float32Array(5), [3, 1, 2]),
    TensorImageError,
    "shape [3, 1, 2] needs 6 values, found 5",
  );
});

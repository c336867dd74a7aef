import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import sharp from "sharp";
import { PixelError, readPixelFacts, readPixelSize, verifyPixels } from "../lib/dataset/pixels.ts";
import { PYTHON, pythonRequirement } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";
import { syntheticImage } from "./fixtures/synthetic_images.ts";

const PIL = pythonRequirement("PIL, numpy");

Deno.test("pixel size and pixel MD5 of a PNG: H×W×3 RGB, row-major", async () => {
  const img = await syntheticImage(11, { width: 40, height: 24 });
  deepStrictEqual(await readPixelSize(img.png), [40, 24]);
  const facts = await readPixelFacts(img.png);
  strictEqual(facts.width, 40);
  strictEqual(facts.height, 24);
  strictEqual(facts.pixelMd5, createHash("md5").update(img.rgb).digest("hex"));
  // An RGBA copy of the same pixels has the same pixel MD5 (alpha is not part of it).
  const rgba = await sharp(img.rgb, { raw: { width: 40, height: 24, channels: 3 } })
    .ensureAlpha().png().toBuffer();
  strictEqual((await readPixelFacts(new Uint8Array(rgba))).pixelMd5, facts.pixelMd5);
});

Deno.test("verifyPixels names the file with expected and found values", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lf_px_" });
  try {
    const img = await syntheticImage(3, { width: 16, height: 16 });
    const path = `${dir}/00003.png`;
    await Deno.writeFile(path, img.png);
    const md5 = createHash("md5").update(img.rgb).digest("hex");
    deepStrictEqual(await verifyPixels(path, { pixelSize: [16, 16], pixelMd5: md5 }, true), {
      width: 16,
      height: 16,
      pixelMd5: md5,
    });
    strictEqual((await verifyPixels(path, { pixelSize: [16, 16] })).pixelMd5, null);
    await rejects(
      verifyPixels(path, { pixelSize: [1024, 1024] }),
      (e: Error) =>
        e instanceof PixelError && e.message === `${path}: expected 1024×1024 pixels, found 16×16`,
    );
    const wrong = "f".repeat(32);
    await rejects(
      verifyPixels(path, { pixelMd5: wrong }, true),
      (e: Error) => e.message === `${path}: expected pixel MD5 ${wrong}, found ${md5}`,
    );
    // An empty file says so, rather than "unsupported image format".
    await Deno.writeFile(`${dir}/empty.jpg`, new Uint8Array());
    for (const check of [true, false]) {
      await rejects(
        verifyPixels(`${dir}/empty.jpg`, {}, check),
        (e: Error) =>
          e instanceof PixelError && e.message === `${dir}/empty.jpg: the file is empty (0 bytes)`,
      );
    }
    await Deno.writeTextFile(`${dir}/page.png`, "<!DOCTYPE html><html></html>");
    await rejects(
      readPixelSize(`${dir}/page.png`),
      (e: Error) =>
        e instanceof PixelError && e.message.startsWith(`${dir}/page.png: not a readable image`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

testIf(PIL, {
  name: "pixel MD5 equals NVIDIA's (numpy array of the PIL image)",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "lf_px_" });
    try {
      const img = await syntheticImage(5, { width: 33, height: 21 });
      await Deno.writeFile(`${dir}/a.png`, img.png);
      const out = await new Deno.Command(PYTHON, {
        args: [
          "-c",
          "import sys, hashlib, numpy as np, PIL.Image; " +
          "print(hashlib.md5(np.array(PIL.Image.open(sys.argv[1])).tobytes()).hexdigest())",
          `${dir}/a.png`,
        ],
        stdout: "piped",
      }).output();
      ok(out.success);
      strictEqual(
        (await readPixelFacts(`${dir}/a.png`)).pixelMd5,
        new TextDecoder().decode(out.stdout).trim(),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

import sharp, { type PngOptions } from "sharp";
import { Buffer } from "node:buffer";
import { loadLibdeflate } from "../lib/image/libdeflate.ts";
import { decodePngFast } from "../lib/image/png_fast.ts";
import { preprocessImage } from "../lib/image/preprocess.ts";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { requirement, testIf } from "./fixtures/skip.ts";

const lib = loadLibdeflate();
const LIBDEFLATE = requirement(
  "missing-dependency",
  lib !== undefined,
  "libdeflate is not installed (Debian: libdeflate0) or FFI is not granted for it",
);

/** Seeded noise with smooth structure, so that every PNG filter type gets chosen somewhere. */
function pixels(width: number, height: number, channels: number, alpha?: (i: number) => number) {
  let seed = width * 7919 + height * 104729 + channels;
  const rand = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed >>> 24;
  };
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * channels;
      for (let c = 0; c < channels; c++) {
        data[i + c] = ((x * (c + 1) * 3 + y * 5) ^ (rand() & 15)) & 255;
      }
      if (alpha && channels === 4) data[i + 3] = alpha(y * width + x);
    }
  }
  return data;
}

async function png(
  width: number,
  height: number,
  channels: 3 | 4,
  options: PngOptions = {},
  alpha?: (i: number) => number,
): Promise<Uint8Array> {
  const raw = pixels(width, height, channels, alpha);
  return new Uint8Array(
    await sharp(raw, { raw: { width, height, channels } }).png(options).toBuffer(),
  );
}

/** The chunk types of a PNG, in order. */
function chunkTypes(bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const types: string[] = [];
  for (let at = 8; at < bytes.length; at += 12 + view.getUint32(at)) {
    types.push(new TextDecoder().decode(bytes.subarray(at + 4, at + 8)));
  }
  return types;
}

/** `bytes` with a chunk inserted after IHDR. */
function withChunk(bytes: Uint8Array, type: string, data: Uint8Array): Uint8Array {
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  chunk.set(new TextEncoder().encode(type), 4);
  chunk.set(data, 8);
  view.setUint32(8 + data.length, lib!.crc32(chunk.subarray(4, 8 + data.length)));
  const at = 8 + 25;
  return new Uint8Array([...bytes.subarray(0, at), ...chunk, ...bytes.subarray(at)]);
}

/** Offset of the first IDAT chunk's data. */
function firstIdat(bytes: Uint8Array): { data: number; length: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 8; at < bytes.length; at += 12 + view.getUint32(at)) {
    if (new TextDecoder().decode(bytes.subarray(at + 4, at + 8)) === "IDAT") {
      return { data: at + 8, length: view.getUint32(at) };
    }
  }
  throw new Error("no IDAT chunk");
}

async function sharpPixels(bytes: Uint8Array, removeAlpha = false): Promise<Uint8Array> {
  let pipeline = sharp(bytes);
  if (removeAlpha) pipeline = pipeline.removeAlpha();
  return new Uint8Array(await pipeline.raw().toBuffer());
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(
    Buffer.from(b.buffer, b.byteOffset, b.length),
  );
}

testIf(LIBDEFLATE, {
  name: "the PNG fast path decodes exactly the pixels sharp decodes",
  async fn() {
    const cases: [string, Uint8Array, 3 | 4][] = [
      ["RGB, adaptive filters", await png(97, 61, 3, { adaptiveFiltering: true }), 3],
      ["RGB, no filter", await png(64, 48, 3, { adaptiveFiltering: false }), 3],
      ["RGB, 1×1", await png(1, 1, 3), 3],
      ["RGB, one column", await png(1, 40, 3, { adaptiveFiltering: true }), 3],
      ["RGBA, translucent", await png(53, 71, 4, { adaptiveFiltering: true }, (i) => i & 255), 4],
      ["RGBA, every alpha 255", await png(40, 40, 4, { adaptiveFiltering: true }, () => 255), 3],
      ["RGB, level 9", await png(80, 80, 3, { compressionLevel: 9 }), 3],
      ["RGB, level 0 (stored blocks)", await png(30, 20, 3, { compressionLevel: 0 }), 3],
    ];
    const big = await png(400, 300, 3, { adaptiveFiltering: true });
    assert(chunkTypes(big).filter((t) => t === "IDAT").length > 1, "expected several IDATs");
    cases.push(["RGB, several IDAT chunks", big, 3]);
    const text = withChunk(cases[0][1], "tEXt", new TextEncoder().encode("Comment\0hello"));
    cases.push(["RGB with a tEXt chunk", text, 3]);

    for (const [what, bytes, channels] of cases) {
      const fast = await decodePngFast(bytes, lib);
      assert(fast !== undefined, `${what}: expected the fast path to decode it`);
      assertEquals(fast.channels, channels, `${what}: channels`);
      const expected = await sharpPixels(bytes, channels === 3);
      const meta = await sharp(bytes).metadata();
      assertEquals([fast.width, fast.height], [meta.width, meta.height], `${what}: size`);
      assert(sameBytes(fast.data, expected), `${what}: pixels differ from sharp's`);
    }
  },
});

testIf(LIBDEFLATE, {
  name: "the PNG fast path leaves other formats, other PNG kinds and damaged files to sharp",
  async fn() {
    const good = await png(64, 64, 3, { adaptiveFiltering: true });
    const raw = pixels(32, 32, 3);
    const image = () => sharp(raw, { raw: { width: 32, height: 32, channels: 3 } });
    const idat = firstIdat(good);
    const flipped = good.slice();
    flipped[idat.data + idat.length - 9] ^= 0x5a;
    // The same damage with the chunk's CRC recomputed: the zlib stream itself is then invalid.
    const resealed = flipped.slice();
    new DataView(resealed.buffer).setUint32(
      idat.data + idat.length,
      lib!.crc32(resealed.subarray(idat.data - 4, idat.data + idat.length)),
    );
    const cases: [string, Uint8Array][] = [
      ["JPEG", new Uint8Array(await image().jpeg().toBuffer())],
      ["greyscale PNG", new Uint8Array(await image().toColourspace("b-w").png().toBuffer())],
      ["palette PNG", new Uint8Array(await image().png({ palette: true }).toBuffer())],
      ["16-bit PNG", new Uint8Array(await image().toColourspace("rgb16").png().toBuffer())],
      ["interlaced PNG", new Uint8Array(await image().png({ progressive: true }).toBuffer())],
      [
        "PNG with an ICC profile",
        new Uint8Array(await image().withIccProfile("p3").png().toBuffer()),
      ],
      ["PNG with gAMA", withChunk(good, "gAMA", new Uint8Array([0, 0, 0xb1, 0x8f]))],
      ["PNG with eXIf", withChunk(good, "eXIf", new TextEncoder().encode("MM\0*\0\0\0\x08\0\0"))],
      ["IDAT with a wrong CRC", flipped],
      ["IDAT whose zlib stream is damaged", resealed],
      ["truncated PNG", good.subarray(0, good.length - 100)],
      ["bytes after IEND", new Uint8Array([...good, 0, 0, 0, 0])],
      ["empty file", new Uint8Array(0)],
    ];
    for (const [what, bytes] of cases) {
      assertEquals(await decodePngFast(bytes, lib), undefined, what);
    }
    assertEquals(await decodePngFast(good, null), undefined, "without libdeflate");
  },
});

testIf(LIBDEFLATE, {
  name: "preprocess gives the same pixels through the fast path as through sharp alone",
  async fn() {
    const cases: [string, Uint8Array][] = [
      ["square RGB", await png(96, 96, 3, { adaptiveFiltering: true })],
      ["wide RGB (center crop)", await png(120, 72, 3, { adaptiveFiltering: true })],
      ["tall translucent RGBA", await png(56, 90, 4, {}, (i) => (i * 7) & 255)],
      ["opaque RGBA", await png(64, 64, 4, {}, () => 255)],
      // Sizes where libvips resizing straight from the file differed by 1/255 at some pixels.
      ["289×289 to 192×192", await png(289, 289, 3, { adaptiveFiltering: true })],
      ["481×289 into the 320x192 bucket", await png(481, 289, 3, { adaptiveFiltering: true })],
    ];
    for (const [what, bytes] of cases) {
      assert((await decodePngFast(bytes, lib)) !== undefined, `${what}: takes the fast path`);
      const options = what.includes("bucket")
        ? { size: 256, crop: "buckets" as const, buckets: { step: 64 } }
        : { size: what.includes("192") ? 192 : 32 };
      const fast = await preprocessImage(bytes, options);
      const libpng = await preprocessImage(bytes, { ...options, fastPng: false });
      assertEquals(
        [fast.sourceWidth, fast.sourceHeight],
        [libpng.sourceWidth, libpng.sourceHeight],
        what,
      );
      assert(sameBytes(fast.previewPng, libpng.previewPng), `${what}: previews differ`);
      const a = new Uint8Array(fast.tensor.buffer);
      const b = new Uint8Array(libpng.tensor.buffer);
      assert(sameBytes(a, b), `${what}: tensors differ`);
    }
  },
});

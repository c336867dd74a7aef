import sharp from "sharp";
import { inflateSync } from "node:zlib";
import {
  PngFilterError,
  unfilterBackend,
  unfilterScanlines,
  unfilterScanlinesJs,
} from "../lib/image/png_unfilter.ts";
import { assertEquals, assertThrows } from "./fixtures/assert.ts";
import { seededRandom } from "../lib/base/random.ts";

/** Seeded uniform integers in [0, n). */
function randomInts(seed: number): (n: number) => number {
  const random = seededRandom(seed);
  return (n) => Math.floor(random() * n);
}

/** Fails with the first differing position rather than a diff of the whole array. */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, label: string) {
  assertEquals(actual.length, expected.length, `${label}: length`);
  const at = actual.findIndex((value, i) => value !== expected[i]);
  if (at !== -1) {
    throw new Error(`${label}: byte ${at} is ${actual[at]}, expected ${expected[at]}`);
  }
}

/** Random filtered scanlines with the given filter type for each row. */
function scanlines(types: number[], stride: number, random: (n: number) => number): Uint8Array {
  const filtered = new Uint8Array(types.length * (stride + 1));
  for (let i = 0; i < filtered.length; i++) filtered[i] = random(256);
  types.forEach((type, row) => filtered[row * (stride + 1)] = type);
  return filtered;
}

/**
 * Filter-type sequences for `height` rows: each type in each row position (the five rotations
 * of 0 1 2 3 4), each type on every row, and random mixes, one of them mostly Paeth so that
 * pairs of Paeth rows meet every other type before and after them.
 */
function filterPatterns(height: number, random: (n: number) => number): number[][] {
  const rows = Array.from({ length: height }, (_, row) => row);
  return [
    ...[0, 1, 2, 3, 4].map((shift) => rows.map((row) => (row + shift) % 5)),
    ...[0, 1, 2, 3, 4].map((type) => rows.map(() => type)),
    rows.map(() => random(5)),
    rows.map(() => (random(4) === 0 ? random(4) : 4)),
  ];
}

Deno.test("the WebAssembly SIMD code is in use", () => {
  assertEquals(unfilterBackend(), "wasm-simd");
});

Deno.test("WebAssembly and JavaScript agree on random scanlines of every filter type", () => {
  const random = randomInts(20240607);
  let cases = 0;
  for (const bpp of [1, 2, 3, 4, 6, 8]) {
    for (const width of [1, 2, 3, 5, 16, 17, 18, 33, 1024]) {
      const stride = width * bpp;
      for (let height = 1; height <= 40; height++) {
        // Every pattern for the narrow images; the wide ones take turns, for run time.
        const patterns = filterPatterns(height, random);
        const chosen = width < 1024 ? patterns : [patterns[height % patterns.length]];
        for (const types of chosen) {
          const filtered = scanlines(types, stride, random);
          assertSameBytes(
            unfilterScanlines(filtered, height, stride, bpp),
            unfilterScanlinesJs(filtered, height, stride, bpp),
            `bpp ${bpp}, width ${width}, rows ${types.join("")}`,
          );
          cases++;
        }
      }
    }
  }
  assertEquals(cases > 20_000, true);
});

Deno.test("strides that are not a whole number of pixels agree too", () => {
  const random = randomInts(7);
  for (const bpp of [2, 3, 4, 6, 8]) {
    for (const stride of [1, 7, 3 * 17 + 1, 4 * 20 + 3, 8 * 33 - 1, 3001]) {
      for (const types of filterPatterns(9, random)) {
        const filtered = scanlines(types, stride, random);
        assertSameBytes(
          unfilterScanlines(filtered, 9, stride, bpp),
          unfilterScanlinesJs(filtered, 9, stride, bpp),
          `bpp ${bpp}, stride ${stride}, rows ${types.join("")}`,
        );
      }
    }
  }
});

Deno.test("a small image after a large one still sees an all-zero row above its first", () => {
  const random = randomInts(99);
  const large = scanlines(Array(64).fill(4), 3072, random);
  unfilterScanlines(large, 64, 3072, 3);
  for (const type of [2, 3, 4]) {
    const small = scanlines([type, 4, 4, 2], 30, random);
    assertSameBytes(
      unfilterScanlines(small, 4, 30, 3),
      unfilterScanlinesJs(small, 4, 30, 3),
      `first row of type ${type}`,
    );
  }
});

Deno.test("hand-worked rows of each filter type", () => {
  // 2×2 RGB. Row 0 Sub, row 1 Paeth; then row 0 None, row 1 Average; then Up twice.
  const cases: [number[], number[]][] = [
    [
      [1, 10, 20, 30, 1, 2, 3, 4, 5, 5, 5, 1, 1, 1],
      [10, 20, 30, 11, 22, 33, 15, 25, 35, 16, 26, 36],
    ],
    [
      [0, 10, 20, 30, 40, 50, 60, 3, 1, 1, 1, 1, 1, 1],
      [10, 20, 30, 40, 50, 60, 6, 11, 16, 24, 31, 39],
    ],
    [
      [2, 200, 100, 0, 1, 2, 3, 2, 100, 200, 255, 0, 0, 0],
      [200, 100, 0, 1, 2, 3, 44, 44, 255, 1, 2, 3],
    ],
  ];
  for (const [filtered, pixels] of cases) {
    const input = new Uint8Array(filtered);
    assertEquals([...unfilterScanlines(input, 2, 6, 3)], pixels);
    assertEquals([...unfilterScanlinesJs(input, 2, 6, 3)], pixels);
  }
});

Deno.test("an unknown filter type is a PngFilterError naming the row and the value", () => {
  const random = randomInts(11);
  for (const row of [0, 1, 6]) {
    const filtered = scanlines([4, 4, 2, 1, 0, 3, 4, 4], 12, random);
    filtered[row * 13] = 5;
    for (const unfilter of [unfilterScanlines, unfilterScanlinesJs]) {
      const error = assertThrows(() => unfilter(filtered, 8, 12, 3), `scanline ${row} `);
      assertEquals(error instanceof PngFilterError, true);
      assertEquals(error.name, "PngFilterError");
      assertEquals(error.message.includes("filter type 5"), true);
    }
  }
});

Deno.test("inconsistent sizes are RangeErrors", () => {
  const filtered = new Uint8Array(4 * 13);
  for (const unfilter of [unfilterScanlines, unfilterScanlinesJs]) {
    let error = assertThrows(() => unfilter(filtered, 4, 13, 3), "expected 56 bytes");
    assertEquals(error instanceof RangeError, true);
    assertEquals(error.message.includes("found 52"), true);
    error = assertThrows(() => unfilter(filtered.subarray(1), 4, 12, 3), "found 51");
    assertEquals(error instanceof RangeError, true);
    assertThrows(() => unfilter(filtered, 4, 12, 0), "bpp");
    assertThrows(() => unfilter(filtered, 4, 12, 9), "bpp");
    assertThrows(() => unfilter(filtered, 4, 12.5, 3), "stride");
    assertThrows(() => unfilter(filtered, -4, 12, 3), "height");
  }
});

Deno.test("empty images", () => {
  assertEquals(unfilterScanlines(new Uint8Array(0), 0, 12, 3).length, 0);
  assertEquals(unfilterScanlines(new Uint8Array([0, 4, 1]), 3, 0, 3).length, 0);
  assertThrows(() => unfilterScanlines(new Uint8Array([0, 9, 1]), 3, 0, 3), "scanline 1");
});

/** The zlib stream of a PNG's IDAT chunks, inflated, and the image's width and height. */
function inflatedImageData(png: Uint8Array) {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const idat: Uint8Array[] = [];
  for (let at = 8; at < png.length; at += 12 + view.getUint32(at)) {
    const type = new TextDecoder().decode(png.subarray(at + 4, at + 8));
    if (type === "IDAT") idat.push(png.subarray(at + 8, at + 8 + view.getUint32(at)));
  }
  const stream = new Uint8Array(idat.reduce((total, part) => total + part.length, 0));
  idat.reduce((at, part) => (stream.set(part, at), at + part.length), 0);
  return { width: view.getUint32(16), height: view.getUint32(20), filtered: inflateSync(stream) };
}

for (const channels of [3, 4] as const) {
  Deno.test(`PNGs that libpng filtered adaptively (${channels} channels) unfilter to sharp's pixels`, async () => {
    const width = 517;
    const height = 131;
    const random = randomInts(channels);
    // Gradients, edges and noise, so that the encoder picks every kind of filter.
    const raw = new Uint8Array(width * height * channels);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < channels; c++) {
          const smooth = (x * (c + 1) + y * (3 - c)) & 255;
          const edge = ((x >> 5) + (y >> 4)) % 2 === 0 ? 90 : 0;
          const noise = y % 7 < 3 ? random(48) : random(4);
          raw[(y * width + x) * channels + c] = smooth + edge + noise;
        }
      }
    }
    const png = new Uint8Array(
      await sharp(raw, { raw: { width, height, channels } }).png({ adaptiveFiltering: true })
        .toBuffer(),
    );
    const expected = new Uint8Array(await sharp(png).raw().toBuffer());
    const image = inflatedImageData(png);
    assertEquals([image.width, image.height], [width, height]);
    const stride = width * channels;
    const types = new Set(
      Array.from({ length: height }, (_, row) => image.filtered[row * (stride + 1)]),
    );
    assertEquals(types.size >= 3 && types.has(4), true, `filter types used: ${[...types]}`);
    assertSameBytes(unfilterScanlines(image.filtered, height, stride, channels), expected, "wasm");
    assertSameBytes(unfilterScanlinesJs(image.filtered, height, stride, channels), expected, "js");
  });
}

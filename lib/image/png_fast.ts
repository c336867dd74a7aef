/**
 * A fast path for the PNGs image datasets are made of (FFHQ, most scraped sets): 8-bit RGB or
 * RGBA, not interlaced, no colour profile or orientation. Their image data is inflated with
 * libdeflate and unfiltered with WebAssembly SIMD, which is about twice as fast as libpng; every
 * other PNG, and any file this path has the least doubt about, is left to sharp.
 *
 * The pixels are exactly the ones sharp decodes (the tests compare them byte for byte), so
 * which path decoded an image changes nothing downstream.
 *
 * @module
 */

import { concatBytes } from "../base/bytes.ts";
import { type Libdeflate, loadLibdeflate } from "./libdeflate.ts";
import { PngFilterError, unfilterScanlines } from "./png_unfilter.ts";

/** Decoded 8-bit pixels, interleaved, row by row. */
export interface RawImage {
  width: number;
  height: number;
  /** 3 (RGB) or 4 (RGBA); an RGBA image whose alpha is 255 everywhere comes back as RGB. */
  channels: 3 | 4;
  data: Uint8Array;
}

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** Chunk types as big-endian 32-bit numbers. */
const type = (name: string) =>
  (name.charCodeAt(0) << 24 | name.charCodeAt(1) << 16 | name.charCodeAt(2) << 8 |
    name.charCodeAt(3)) >>> 0;
const IHDR = type("IHDR");
const IDAT = type("IDAT");
const IEND = type("IEND");
/** Ancillary chunks that do not change how sharp renders the pixels. */
const IGNORABLE = new Set(["tEXt", "zTXt", "iTXt", "tIME", "pHYs"].map(type));

/** Largest image the fast path takes on (sharp's default pixel limit, 0x3FFF × 0x3FFF). */
const MAX_PIXELS = 0x3fff * 0x3fff;

/**
 * Decodes `bytes` when it is a PNG the fast path handles and libdeflate is present (`lib`: by
 * default the system's; `null` for none). Otherwise (another format or kind of PNG, a damaged
 * file, no libdeflate) returns `undefined`, and the caller decodes with sharp, which also words
 * the error for a damaged file.
 */
export async function decodePngFast(
  bytes: Uint8Array,
  lib: Libdeflate | null = loadLibdeflate() ?? null,
): Promise<RawImage | undefined> {
  if (lib === null || bytes.length < 8 + 25 + 12) return undefined;
  for (let i = 0; i < 8; i++) if (bytes[i] !== SIGNATURE[i]) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  // Walk the chunks: IHDR first, the IDATs one after another, IEND last, every CRC right.
  let width = 0;
  let height = 0;
  let channels: 3 | 4 = 3;
  const idat: Uint8Array[] = [];
  let idatBytes = 0;
  let idatDone = false;
  let offset = 8;
  for (;;) {
    if (offset + 12 > bytes.length) return undefined;
    const length = view.getUint32(offset);
    const kind = view.getUint32(offset + 4);
    const end = offset + 12 + length;
    if (length > 0x7fffffff || end > bytes.length) return undefined;
    const crc = lib.crc32(bytes.subarray(offset + 4, offset + 8 + length));
    if (crc !== view.getUint32(offset + 8 + length)) return undefined;
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if (offset === 8) {
      if (kind !== IHDR || length !== 13) return undefined;
      width = view.getUint32(offset + 8);
      height = view.getUint32(offset + 12);
      const [depth, colour, compression, filter, interlace] = data.subarray(8, 13);
      if (depth !== 8 || (colour !== 2 && colour !== 6)) return undefined;
      if (compression !== 0 || filter !== 0 || interlace !== 0) return undefined;
      if (width === 0 || height === 0 || width * height > MAX_PIXELS) return undefined;
      channels = colour === 6 ? 4 : 3;
    } else if (kind === IDAT) {
      if (idatDone) return undefined;
      idat.push(data);
      idatBytes += length;
    } else if (kind === IEND) {
      // Bytes after IEND make libpng complain; leave such files to sharp.
      if (end !== bytes.length || idat.length === 0) return undefined;
      break;
    } else if (IGNORABLE.has(kind)) {
      idatDone ||= idat.length > 0;
    } else {
      return undefined;
    }
    offset = end;
  }

  const stride = width * channels;
  const stream = idat.length === 1 ? idat[0] : concatBytes(idat, idatBytes);
  const filtered = await lib.zlibInflate(stream, height * (stride + 1));
  if (filtered === undefined) return undefined;
  let pixels: Uint8Array;
  try {
    pixels = unfilterScanlines(filtered, height, stride, channels);
  } catch (e) {
    // An unknown filter type: sharp reports it.
    if (e instanceof PngFilterError) return undefined;
    throw e;
  }
  if (channels === 4 && opaque(pixels)) {
    return { width, height, channels: 3, data: dropAlpha(pixels) };
  }
  return { width, height, channels, data: pixels };
}

/** Whether every alpha value of RGBA `pixels` is 255. */
function opaque(pixels: Uint8Array): boolean {
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 255) return false;
  return true;
}

function dropAlpha(rgba: Uint8Array): Uint8Array {
  const pixels = rgba.length >> 2;
  const rgb = new Uint8Array(pixels * 3);
  for (let i = 0, j = 0, k = 0; i < pixels; i++, j += 4, k += 3) {
    rgb[k] = rgba[j];
    rgb[k + 1] = rgba[j + 1];
    rgb[k + 2] = rgba[j + 2];
  }
  return rgb;
}

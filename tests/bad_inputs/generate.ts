/**
 * Small bad inputs made on the fly for the bad-input corpus: broken PNGs, a PNG that declares
 * billions of pixels, and ONNX models that are cut short, take the wrong rank, use an op the
 * gradient graph cannot differentiate or compute NaN.
 *
 * @module
 */
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { GraphBuilder } from "../../lib/onnx/graph_builder.ts";
import { readGraph, writeModel } from "../../lib/onnx/model_io.ts";
import { DataType } from "../../lib/onnx/tensor.ts";

/** A small plain PNG of one colour. */
export async function solidPng(side: number, shade: number): Promise<Uint8Array<ArrayBuffer>> {
  const buf = await sharp({
    create: {
      width: side,
      height: side,
      channels: 3,
      background: { r: shade, g: 255 - shade, b: (shade * 3) % 256 },
    },
  }).png().toBuffer();
  return new Uint8Array(buf);
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  const body = new Uint8Array(4 + data.length);
  body.set(new TextEncoder().encode(type));
  body.set(data, 4);
  out.set(body, 4);
  view.setUint32(8 + data.length, crc32(body));
  return out;
}

/**
 * A valid-looking PNG whose header declares `side`×`side` RGB pixels while holding only a few
 * compressed rows: a decompression bomb for any decoder that trusts the header.
 */
export function pngBomb(side = 50_000): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, side);
  v.setUint32(4, side);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, truecolour, deflate, no filter, no interlace
  const rows = new Uint8Array(4 * (1 + side * 3)); // four all-black rows
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", new Uint8Array(deflateSync(rows))),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An HTML page of the kind a file host answers with instead of the file. */
export const HTML_PAGE = `<!DOCTYPE html><html><head><title>Sign in to continue</title></head>
<body><p>This file is not available. Please sign in.</p></body></html>`;

/** Writes the first `fraction` of `from`'s bytes to `to`. */
export async function truncateCopy(from: string, to: string, fraction: number): Promise<void> {
  const bytes = await Deno.readFile(from);
  await Deno.writeFile(to, bytes.subarray(0, Math.floor(bytes.length * fraction)));
}

/** An encoder whose input is rank 3 (`batch × 3 × pixels`), not an image batch. */
export async function rank3Encoder(path: string): Promise<void> {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("sample", DataType.FLOAT, ["batch", 3, "pixels"]);
  b.output(b.node("Identity", [x]), DataType.FLOAT, ["batch", 3, "pixels"], "latent");
  await writeModel(path, b.graph);
}

/** `decoder` with `Sin` applied to its output: ONNX Runtime runs it, the VJP table has no rule. */
export async function sinDecoder(decoder: string, path: string): Promise<void> {
  const graph = await readGraph(decoder);
  const b = new GraphBuilder({ graph });
  const image = graph.outputs[0];
  const bent = b.node("Sin", [image.name]);
  graph.outputs = [];
  b.output(bent, image.dtype, image.dims);
  await writeModel(path, graph);
}

/** `decoder` plus mean(√(z − 1000)) · 0: every latent the pipeline sees gives a NaN image. */
export async function nanDecoder(decoder: string, path: string): Promise<void> {
  const graph = await readGraph(decoder);
  const b = new GraphBuilder({ graph });
  const z = graph.inputs[0].name;
  const image = graph.outputs[0];
  const root = b.node("Sqrt", [b.node("Sub", [z, b.scalar(1000)])]);
  const mean = b.node("ReduceMean", [root], { axes: [1, 2, 3], keepdims: 1 });
  const poisoned = b.node("Add", [image.name, b.node("Mul", [mean, b.scalar(0)])]);
  graph.outputs = [];
  b.output(poisoned, image.dtype, image.dims);
  await writeModel(path, graph);
}

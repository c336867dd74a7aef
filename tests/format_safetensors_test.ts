import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  SafetensorsError,
  type Tensor,
} from "../lib/format/safetensors.ts";
import { PYTHON, pythonRequirement } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";

const NUMPY = pythonRequirement("numpy");

function sample(): Record<string, Tensor> {
  return {
    latents: {
      dtype: "F32",
      shape: [2, 4, 3, 3],
      data: new Float32Array(72).map((_, i) => Math.sin(i) * 4),
    },
    ok: { dtype: "U8", shape: [3], data: new Uint8Array([1, 0, 1]) },
    psnr_final: { dtype: "F64", shape: [2], data: new Float64Array([30.5, Infinity]) },
    steps: { dtype: "I32", shape: [2], data: new Int32Array([100, -1]) },
    ticks: { dtype: "I64", shape: [1], data: new BigInt64Array([123456789012345678n]) },
    scalar: { dtype: "F32", shape: [], data: new Float32Array([7]) },
  };
}

const METADATA = {
  ids: JSON.stringify(["00001", "ünï"]),
  scaling_factor: "0.18215",
  config: JSON.stringify({ optimize: { lr: 0.1 } }),
};

const DTYPE_BYTES: Record<string, number> = { F32: 4, F64: 8, I32: 4, I64: 8, U8: 1 };

Deno.test("safetensors round trip through the reader", () => {
  const bytes = encodeSafetensors({ tensors: sample(), metadata: METADATA });
  const back = decodeSafetensors(bytes);
  deepStrictEqual(back.metadata, METADATA);
  deepStrictEqual(back.tensors, sample());
});

Deno.test("safetensors layout follows the published format, parsed by hand", () => {
  const input = sample();
  const bytes = encodeSafetensors({ tensors: input, metadata: METADATA });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  strictEqual((8 + n) % 8, 0, "data starts 8-byte aligned");
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  strictEqual(text[0], "{");
  strictEqual(/^[^ ]*\}( *)$/.test(text), true, "padding is trailing spaces only");
  const header = JSON.parse(text);
  deepStrictEqual(header.__metadata__, METADATA);
  const dataStart = 8 + n;
  const spans: [number, number][] = [];
  for (const [name, tensor] of Object.entries(input)) {
    const entry = header[name];
    strictEqual(entry.dtype, tensor.dtype);
    deepStrictEqual(entry.shape, tensor.shape);
    const [begin, end] = entry.data_offsets;
    strictEqual(end - begin, tensor.data.byteLength, name);
    strictEqual(begin % DTYPE_BYTES[tensor.dtype], 0, `${name} aligned to its element size`);
    const expected = new Uint8Array(
      tensor.data.buffer,
      tensor.data.byteOffset,
      tensor.data.byteLength,
    );
    deepStrictEqual(bytes.subarray(dataStart + begin, dataStart + end), expected, name);
    spans.push([begin, end]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let position = 0;
  for (const [begin, end] of spans) {
    strictEqual(begin, position, "contiguous, no holes");
    position = end;
  }
  strictEqual(dataStart + position, bytes.length, "no trailing bytes");
  // Only the tensors and __metadata__: nothing else in the header.
  deepStrictEqual(Object.keys(header).sort(), [...Object.keys(input), "__metadata__"].sort());
});

Deno.test("safetensors without metadata has no __metadata__ and reads back empty", () => {
  const bytes = encodeSafetensors({ tensors: { a: sample().ok } });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  strictEqual("__metadata__" in header, false);
  deepStrictEqual(decodeSafetensors(bytes).metadata, {});
});

function withHeader(header: unknown, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("safetensors reader rejects malformed files with the reason", () => {
  const reject = (bytes: Uint8Array, pattern: RegExp) =>
    throws(
      () => decodeSafetensors(bytes, "x.safetensors"),
      (e: Error) => e instanceof SafetensorsError && pattern.test(e.message),
    );
  reject(new Uint8Array(4), /expected at least 8 bytes, found 4/);
  reject(
    withHeader({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4)),
    /cover 8 data bytes, found 4/,
  );
  reject(
    withHeader({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
    /needs 12 bytes, data_offsets span 8/,
  );
  reject(
    withHeader({ a: { dtype: "BF16", shape: [1], data_offsets: [0, 2] } }, new Uint8Array(2)),
    /"a": expected dtype one of .* found "BF16"/,
  );
  reject(
    withHeader({
      a: { dtype: "U8", shape: [2], data_offsets: [0, 2] },
      b: { dtype: "U8", shape: [2], data_offsets: [4, 6] },
    }, new Uint8Array(6)),
    /"b" starts at 4, expected 2/,
  );
  reject(
    withHeader({ __metadata__: { n: 1 } }, new Uint8Array(0)),
    /metadata "n": expected a string/,
  );
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 1000n, true);
  reject(huge, /header length 1000 exceeds/);
  throws(
    () =>
      encodeSafetensors({
        tensors: { a: { dtype: "F32", shape: [2], data: new Float64Array(2) } },
      }),
    (e: Error) =>
      e instanceof SafetensorsError &&
      /F32 needs a Float32Array, found a Float64Array/.test(e.message),
  );
});

testIf(NUMPY, {
  name: "numpy reads the safetensors file by the format's rules",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/latents.safetensors`;
      const input = sample();
      await Deno.writeFile(path, encodeSafetensors({ tensors: input, metadata: METADATA }));
      const script = `
import json, struct, sys, numpy as np
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n].decode("utf-8"))
types = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "U8": "|u1"}
out = {"metadata": header.pop("__metadata__"), "tensors": {}}
for name, t in header.items():
    b, e = t["data_offsets"]
    a = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=types[t["dtype"]]).reshape(t["shape"])
    out["tensors"][name] = {"shape": list(a.shape), "values": [str(v) for v in a.reshape(-1).tolist()]}
print(json.dumps(out))
`;
      const { code, stdout, stderr } = new Deno.Command(PYTHON, { args: ["-c", script, path] })
        .outputSync();
      strictEqual(code, 0, new TextDecoder().decode(stderr));
      const out = JSON.parse(new TextDecoder().decode(stdout));
      deepStrictEqual(out.metadata, METADATA);
      deepStrictEqual(out.tensors.latents.shape, [2, 4, 3, 3]);
      // numpy prints float32 values as the shortest repr of the float64 widening.
      deepStrictEqual(
        out.tensors.latents.values.map(Number),
        Array.from(input.latents.data as Float32Array),
      );
      deepStrictEqual(out.tensors.psnr_final.values, ["30.5", "inf"]);
      deepStrictEqual(out.tensors.ticks.values, ["123456789012345678"]);
      deepStrictEqual(out.tensors.steps.values, ["100", "-1"]);
      deepStrictEqual(out.tensors.scalar, { shape: [], values: ["7.0"] });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

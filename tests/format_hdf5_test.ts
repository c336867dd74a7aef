import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { encodeHdf5, type Hdf5Contents, Hdf5Error, writeHdf5File } from "../lib/format/hdf5.ts";
import { pythonRequirement, runPython } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";

const H5PY = pythonRequirement("h5py, numpy");

// Prints every dataset (dtype, shape, raw bytes or strings) and attribute of a file as JSON.
const DUMP = `
import json, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
out = {"datasets": {}, "attributes": {}}
for k in f:
    d = f[k]
    info = h5py.check_string_dtype(d.dtype)
    entry = {"shape": list(d.shape), "chunks": list(d.chunks) if d.chunks else None,
             "compression": d.compression}
    if info is not None:
        entry["dtype"] = "vlen-str" if info.length is None else "fixed-str%d" % info.length
        entry["encoding"] = info.encoding
        entry["values"] = d.asstr()[()].reshape(-1).tolist()
    else:
        a = d[()]
        entry["dtype"] = a.dtype.str
        entry["hex"] = np.ascontiguousarray(a).tobytes().hex()
    out["datasets"][k] = entry
for k, v in f.attrs.items():
    if isinstance(v, str):
        out["attributes"][k] = {"type": "str", "value": v}
    else:
        out["attributes"][k] = {"type": np.asarray(v).dtype.str, "value": str(v)}
print(json.dumps(out))
`;

function hex(data: ArrayBufferView): string {
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
}

function sample(): Hdf5Contents {
  return {
    datasets: {
      ids: { dtype: "<U", shape: [3], data: ["00001", "é-ünïcode-😀", ""] },
      latents: {
        dtype: "<f4",
        shape: [3, 4, 2, 2],
        data: new Float32Array(48).map((_, i) => Math.cos(i) * 2.25),
      },
      loss_final: { dtype: "<f8", shape: [3], data: new Float64Array([0.125, 1 / 3, -0]) },
      steps: { dtype: "<i4", shape: [3], data: new Int32Array([1, 200, -7]) },
      sizes: { dtype: "<i8", shape: [2], data: new BigInt64Array([9007199254740993n, -1n]) },
      mask: { dtype: "|u1", shape: [2, 2], data: new Uint8Array([0, 1, 254, 255]) },
      empty: { dtype: "<f4", shape: [0, 4], data: new Float32Array(0) },
    },
    attributes: {
      scaling_factor: 0.18215,
      unit_scale: 1,
      count: 12345678901234n,
      tool: "latentforge 0.1.0",
      config: JSON.stringify({ optimize: { lr: 0.1, method: "gradient" }, name: "ünï" }),
    },
  };
}

Deno.test("encodeHdf5 writes an HDF5 file (signature bytes)", async () => {
  const bytes = await encodeHdf5(sample());
  deepStrictEqual(Array.from(bytes.subarray(0, 8)), [
    0x89,
    0x48,
    0x44,
    0x46,
    0x0d,
    0x0a,
    0x1a,
    0x0a,
  ]);
});

Deno.test("HDF5 rejects a wrong element count and names the dataset", async () => {
  await rejects(
    encodeHdf5({
      datasets: { latents: { dtype: "<f4", shape: [2, 3], data: new Float32Array(5) } },
    }),
    (e: Error) =>
      e instanceof Hdf5Error &&
      /"latents": shape \[2, 3\] needs 6 elements, found 5/.test(e.message),
  );
  await rejects(
    encodeHdf5({ datasets: {}, attributes: { "a/b": 1 } }),
    (e: Error) => e instanceof Hdf5Error && /attribute name "a\/b"/.test(e.message),
  );
});

testIf(H5PY, {
  name: "h5py opens the file: datasets, dtypes and attributes equal",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const input = sample();
      const path = `${dir}/latents.h5`;
      await Deno.writeFile(path, await encodeHdf5(input));
      const out = JSON.parse(runPython(DUMP, [path]));
      deepStrictEqual(Object.keys(out.datasets).sort(), Object.keys(input.datasets).sort());
      deepStrictEqual(out.datasets.ids, {
        shape: [3],
        chunks: null,
        compression: null,
        dtype: "vlen-str",
        encoding: "utf-8",
        values: ["00001", "é-ünïcode-😀", ""],
      });
      for (const name of ["latents", "loss_final", "steps", "sizes", "mask", "empty"]) {
        const array = input.datasets[name];
        if (array.dtype === "<U") throw new Error("numeric expected");
        strictEqual(out.datasets[name].dtype, array.dtype, name);
        deepStrictEqual(out.datasets[name].shape, array.shape, name);
        strictEqual(out.datasets[name].hex, hex(array.data), name);
      }
      deepStrictEqual(out.attributes, {
        scaling_factor: { type: "<f8", value: "0.18215" },
        unit_scale: { type: "<f8", value: "1.0" },
        count: { type: "<i8", value: "12345678901234" },
        tool: { type: "str", value: "latentforge 0.1.0" },
        config: { type: "str", value: input.attributes!.config },
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

testIf(H5PY, {
  name: "h5py reads fixed-length ids, gzip chunks and block-written large datasets",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const latents = new Float32Array(37 * 4 * 8 * 8).map((_, i) => (i % 97) / 13 - 3);
      const contents: Hdf5Contents = {
        datasets: {
          ids: { dtype: "<U", shape: [2, 2], data: ["a", "bé", "ccc", "dddd"] },
          latents: { dtype: "<f4", shape: [37, 4, 8, 8], data: latents },
        },
      };
      const path = `${dir}/sub/latents.h5`;
      await Deno.mkdir(`${dir}/sub`);
      // 1,000 bytes per block forces row-block writes over many slices.
      await writeHdf5File(path, contents, { strings: "fixed", gzip: 4, sliceBytes: 1000 });
      deepStrictEqual(
        Array.from(Deno.readDirSync(`${dir}/sub`), (e) => e.name),
        ["latents.h5"],
        "no temp file left beside the result",
      );
      const out = JSON.parse(runPython(DUMP, [path]));
      deepStrictEqual(out.datasets.ids, {
        shape: [2, 2],
        chunks: null,
        compression: null,
        dtype: "fixed-str4",
        encoding: "utf-8",
        values: ["a", "bé", "ccc", "dddd"],
      });
      strictEqual(out.datasets.latents.dtype, "<f4");
      deepStrictEqual(out.datasets.latents.shape, [37, 4, 8, 8]);
      strictEqual(out.datasets.latents.compression, "gzip");
      deepStrictEqual(out.datasets.latents.chunks, [1, 4, 8, 8]);
      strictEqual(out.datasets.latents.hex, hex(latents));

      // Uncompressed, block-written: same values.
      await writeHdf5File(path, contents, { sliceBytes: 3000 });
      const plain = JSON.parse(runPython(DUMP, [path]));
      strictEqual(plain.datasets.latents.hex, hex(latents));
      strictEqual(plain.datasets.latents.compression, null);
      deepStrictEqual(plain.datasets.latents.chunks, [2, 4, 8, 8]);
      strictEqual(plain.datasets.ids.dtype, "vlen-str");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

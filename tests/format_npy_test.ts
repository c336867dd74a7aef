import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  decodeNpy,
  decodeNpyArray,
  decodeNpyStrings,
  encodeNpy,
  encodeNpyStrings,
  NpyError,
} from "../lib/format/npy.ts";
import { PYTHON, pythonRequirement } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";

const NUMPY = pythonRequirement("numpy");

Deno.test("npy data starts on a 64-byte boundary and round trips", () => {
  for (const shape of [[], [5], [2, 3], [1, 4, 3, 3]]) {
    const count = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: count }, (_, i) => i - 0.5);
    const bytes = encodeNpy({ dtype: "<f4", shape, data });
    strictEqual((bytes.length - count * 4) % 64, 0, `shape [${shape}]`);
    deepStrictEqual(decodeNpy(bytes), { dtype: "<f4", shape, data });
  }
});

Deno.test("a typed array of another element type is rejected, not copied as raw bytes", () => {
  throws(
    () => encodeNpy({ dtype: "<f4", shape: [2], data: new Float64Array([1, 2]) }),
    (e: Error) =>
      e instanceof NpyError && e.message === "dtype <f4 needs a Float32Array, found a Float64Array",
  );
  throws(
    () => encodeNpy({ dtype: "<i8", shape: [2], data: new Int32Array(2) }),
    (e: Error) =>
      e instanceof NpyError && /<i8 needs a BigInt64Array, found a Int32Array/.test(e.message),
  );
});

Deno.test("a subarray view encodes only its own elements", () => {
  const whole = Float32Array.from([9, 1, 2, 3, 9]);
  const bytes = encodeNpy({ dtype: "<f4", shape: [3], data: whole.subarray(1, 4) });
  deepStrictEqual(decodeNpy(bytes).data, Float32Array.from([1, 2, 3]));
});

Deno.test("strings: <U{n} with n the longest count of code points, round trip", () => {
  const data = ["00001", "😀x", "", "é"];
  const bytes = encodeNpyStrings({ dtype: "<U", shape: [2, 2], data });
  strictEqual(new TextDecoder().decode(bytes.subarray(10, 30)), "{'descr': '<U5', 'fo");
  deepStrictEqual(decodeNpyStrings(bytes), { dtype: "<U", shape: [2, 2], data });
  deepStrictEqual(decodeNpyArray(bytes), { dtype: "<U", shape: [2, 2], data });
  strictEqual(
    decodeNpyArray(encodeNpy({ dtype: "|u1", shape: [1], data: new Uint8Array([7]) })).dtype,
    "|u1",
  );
  throws(
    () => encodeNpyStrings({ dtype: "<U", shape: [1], data: ["a\0"] }),
    (e: Error) => e instanceof NpyError && /no trailing NUL/.test(e.message),
  );
  throws(
    () => decodeNpy(bytes, "ids.npy"),
    (e: Error) =>
      e instanceof NpyError && /ids.npy: expected dtype one of .* found <U5/.test(e.message),
  );
});

Deno.test("truncated files name the source and the sizes", () => {
  const bytes = encodeNpy({ dtype: "<f8", shape: [3], data: new Float64Array(3) });
  throws(
    () => decodeNpy(bytes.subarray(0, bytes.length - 8), "latent.npy"),
    (e: Error) =>
      e instanceof NpyError &&
      /latent.npy: shape \[3\] of <f8 needs 24 data bytes, found 16/.test(e.message),
  );
  throws(
    () => decodeNpy(bytes.subarray(0, 40), "latent.npy"),
    (e: Error) =>
      e instanceof NpyError && /header of 118 bytes runs past the end of 40 bytes/.test(e.message),
  );
});

testIf(NUMPY, {
  name: "numpy.load reads numeric and string .npy files; ours reads numpy's",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(
        `${dir}/ids.npy`,
        encodeNpyStrings({ dtype: "<U", shape: [3], data: ["a", "bé", "😀😀"] }),
      );
      await Deno.writeFile(
        `${dir}/x.npy`,
        encodeNpy({ dtype: "<i8", shape: [2, 1], data: new BigInt64Array([-3n, 1n << 40n]) }),
      );
      const script = `
import sys, json, numpy as np
ids = np.load(sys.argv[1] + "/ids.npy")
x = np.load(sys.argv[1] + "/x.npy")
np.save(sys.argv[1] + "/np_ids.npy", np.array([["p", "qq"], ["", "ü"]]))
np.save(sys.argv[1] + "/np_f.npy", np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
print(json.dumps({"ids": ids.tolist(), "ids_dtype": ids.dtype.str, "x": [str(v) for v in x.ravel()],
                  "x_dtype": x.dtype.str, "x_shape": list(x.shape)}))
`;
      const { code, stdout, stderr } = new Deno.Command(PYTHON, { args: ["-c", script, dir] })
        .outputSync();
      strictEqual(code, 0, new TextDecoder().decode(stderr));
      deepStrictEqual(JSON.parse(new TextDecoder().decode(stdout)), {
        ids: ["a", "bé", "😀😀"],
        ids_dtype: "<U2",
        x: ["-3", "1099511627776"],
        x_dtype: "<i8",
        x_shape: [2, 1],
      });
      deepStrictEqual(decodeNpyArray(await Deno.readFile(`${dir}/np_ids.npy`)), {
        dtype: "<U",
        shape: [2, 2],
        data: ["p", "qq", "", "ü"],
      });
      deepStrictEqual(decodeNpy(await Deno.readFile(`${dir}/np_f.npy`)), {
        dtype: "<f4",
        shape: [2, 3],
        data: Float32Array.from([-1, -0.6, -0.2, 0.2, 0.6, 1]),
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

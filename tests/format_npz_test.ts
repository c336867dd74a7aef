import { deepStrictEqual, notDeepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { type Zippable, zipSync } from "fflate";
import { decodeNpz, encodeNpz, type NpzArray, NpzError } from "../lib/format/npz.ts";
import { pythonRequirement, runPython } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";

const NUMPY = pythonRequirement("numpy");

function sample(): Record<string, NpzArray> {
  const latents = new Float32Array(3 * 4 * 2 * 2).map((_, i) => Math.sin(i) * 3.5);
  latents[5] = -0;
  latents[7] = 1e-42; // subnormal survives the trip
  return {
    ids: { dtype: "<U", shape: [3], data: ["00001", "é-ünïcode-😀", "x"] },
    latents: { dtype: "<f4", shape: [3, 4, 2, 2], data: latents },
    steps: { dtype: "<i4", shape: [3], data: new Int32Array([10, -2, 2147483647]) },
    big: { dtype: "<i8", shape: [2], data: new BigInt64Array([9007199254740993n, -5n]) },
    psnr: { dtype: "<f8", shape: [3], data: new Float64Array([31.25, Infinity, 1 / 3]) },
    scalar: { dtype: "<f4", shape: [], data: new Float32Array([2.5]) },
  };
}

Deno.test("npz round trip keeps dtypes, shapes, values and ids", () => {
  for (const compress of [false, true]) {
    const input = sample();
    const back = decodeNpz(encodeNpz(input, { compress }));
    deepStrictEqual(Object.keys(back).sort(), Object.keys(input).sort());
    for (const [name, array] of Object.entries(input)) {
      deepStrictEqual(back[name], array, `${name} (compress ${compress})`);
    }
  }
});

/** Runs `fn` with the global clock (`Date.now()`, `new Date()`) reading `iso`. */
function atTime<T>(iso: string, fn: () => T): T {
  const RealDate = Date;
  const ms = RealDate.parse(iso);
  class FixedDate extends RealDate {
    constructor(...args: ConstructorParameters<typeof Date> | []) {
      super(...(args.length === 0 ? [ms] : args) as ConstructorParameters<typeof Date>);
    }
    static override now(): number {
      return ms;
    }
  }
  globalThis.Date = FixedDate as DateConstructor;
  try {
    return fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

Deno.test("npz bytes depend only on the arrays", () => {
  const early = "2001-02-03T04:05:06Z";
  const late = "2038-01-19T03:14:07Z";
  // The clock really reaches the zip writer: an entry without a fixed time differs.
  const plain: Zippable = { "a.npy": [new Uint8Array([1, 2, 3]), {}] };
  notDeepStrictEqual(atTime(early, () => zipSync(plain)), atTime(late, () => zipSync(plain)));
  for (const compress of [false, true]) {
    deepStrictEqual(
      atTime(early, () => encodeNpz(sample(), { compress })),
      atTime(late, () => encodeNpz(sample(), { compress })),
      `compress ${compress}`,
    );
  }
});

Deno.test("npz compression shrinks a compressible archive", () => {
  const zeros: Record<string, NpzArray> = {
    z: { dtype: "<f4", shape: [1000], data: new Float32Array(1000) },
  };
  const stored = encodeNpz(zeros).length;
  const deflated = encodeNpz(zeros, { compress: true }).length;
  strictEqual(stored > 4000, true);
  strictEqual(deflated < 400, true, `deflated ${deflated} bytes`);
});

Deno.test("npz rejects a wrong element count, dtype mismatch and bad names", () => {
  throws(
    () => encodeNpz({ a: { dtype: "<f4", shape: [2, 2], data: new Float32Array(3) } }),
    (e: Error) => e instanceof NpzError && /"a".*needs 4 elements, found 3/.test(e.message),
  );
  throws(
    () => encodeNpz({ a: { dtype: "<f4", shape: [2], data: new Float64Array(2) } }),
    (e: Error) =>
      e instanceof NpzError && /<f4 needs a Float32Array, found a Float64Array/.test(e.message),
  );
  throws(
    () => encodeNpz({ "a/b": { dtype: "<f4", shape: [1], data: new Float32Array(1) } }),
    (e: Error) => e instanceof NpzError && /a\/b/.test(e.message),
  );
  throws(
    () => decodeNpz(new Uint8Array([1, 2, 3]), "latents.npz"),
    (e: Error) => e instanceof NpzError && /latents.npz: expected a zip archive/.test(e.message),
  );
});

testIf(NUMPY, {
  name: "numpy.load opens the npz with equal values and dtypes",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      for (const compress of [false, true]) {
        const path = `${dir}/latents_${compress}.npz`;
        const input = sample();
        await Deno.writeFile(path, encodeNpz(input, { compress }));
        const out = JSON.parse(runPython(
          `
import json, sys, numpy as np
z = np.load(sys.argv[1])
out = {}
for k in z.files:
    a = z[k]
    if a.dtype.kind == "U":
        vals = a.tolist()
    elif a.dtype.kind == "f":
        # raw bytes: exact comparison, including -0, subnormals and infinities
        vals = a.tobytes().hex()
    else:
        vals = [str(v) for v in a.reshape(-1).tolist()]
    out[k] = {"dtype": a.dtype.str, "shape": list(a.shape), "values": vals,
              "unicode": isinstance(a, np.ndarray) and a.dtype.kind == "U"}
print(json.dumps(out))
`,
          [path],
        ));
        deepStrictEqual(Object.keys(out).sort(), Object.keys(input).sort());
        deepStrictEqual(out.ids, {
          dtype: "<U11",
          shape: [3],
          values: input.ids.data,
          unicode: true,
        });
        const bits = (a: NpzArray) => {
          if (a.dtype === "<U") throw new Error("numeric array expected");
          const raw = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
          return Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
        };
        deepStrictEqual(out.latents.shape, [3, 4, 2, 2]);
        strictEqual(out.latents.dtype, "<f4");
        deepStrictEqual(out.latents.values, bits(input.latents));
        deepStrictEqual(out.scalar, {
          dtype: "<f4",
          shape: [],
          values: bits(input.scalar),
          unicode: false,
        });
        strictEqual(out.psnr.dtype, "<f8");
        strictEqual(out.psnr.values, bits(input.psnr));
        deepStrictEqual(out.steps, {
          dtype: "<i4",
          shape: [3],
          values: ["10", "-2", "2147483647"],
          unicode: false,
        });
        deepStrictEqual(out.big.values, ["9007199254740993", "-5"]);
        strictEqual(out.big.dtype, "<i8");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

testIf(NUMPY, {
  name: "an npz written by numpy.savez(_compressed) decodes, ids as strings",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      runPython(
        `
import sys, numpy as np
ids = np.array(["a", "bé", "😀😀😀"])
lat = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
np.savez(sys.argv[1] + "/s.npz", ids=ids, latents=lat, steps=np.array([3, 4], dtype=np.int64))
np.savez_compressed(sys.argv[1] + "/c.npz", ids=ids, latents=lat)
`,
        [dir],
      );
      for (const name of ["s", "c"]) {
        const back = decodeNpz(await Deno.readFile(`${dir}/${name}.npz`), `${name}.npz`);
        deepStrictEqual(back.ids, { dtype: "<U", shape: [3], data: ["a", "bé", "😀😀😀"] });
        const expected = new Float32Array(24).map((_, i) => i / 7);
        deepStrictEqual(back.latents, { dtype: "<f4", shape: [2, 3, 4], data: expected });
      }
      const s = decodeNpz(await Deno.readFile(`${dir}/s.npz`));
      deepStrictEqual(s.steps, { dtype: "<i8", shape: [2], data: new BigInt64Array([3n, 4n]) });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

import { ok, strictEqual, throws } from "node:assert/strict";
import process from "node:process";
import { MetricError, psnr, ssim } from "../lib/optim/metrics.ts";
import { PYTHON, pythonRequirement } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";

const NUMPY = pythonRequirement("numpy");

function near(found: number, expected: number, tolerance: number, what: string) {
  ok(Math.abs(found - expected) <= tolerance, `${what}: expected ${expected}, found ${found}`);
}

/** A deterministic image in [-1, 1] with structure: gradients, a disc and stripes. */
function image(c: number, h: number, w: number, seed: number): Float32Array {
  const out = new Float32Array(c * h * w);
  let state = seed;
  const noise = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
  for (let k = 0; k < c; k++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const disc = (x - w / 2) ** 2 + (y - h / 3) ** 2 < (h / 4) ** 2 ? 0.6 : 0;
        const stripes = Math.sin(x * (0.3 + 0.1 * k)) * 0.3;
        const v = (x / w - 0.5) + disc + stripes + noise() * 0.2;
        out[(k * h + y) * w + x] = Math.max(-1, Math.min(1, v));
      }
    }
  }
  return out;
}

Deno.test("PSNR: identical images give Infinity, a known MSE gives its value", () => {
  const a = image(3, 16, 16, 1);
  strictEqual(psnr(a, a.slice()), Infinity);
  const b = a.map((v, i) => v + (i % 2 === 0 ? 0.1 : -0.1)); // MSE 0.01 (to float32 rounding)
  near(psnr(a, b), 10 * Math.log10(4 / 0.01), 1e-4, "PSNR at MSE 0.01"); // 26.0206 dB
  const zeros = new Float32Array(4);
  near(psnr(zeros, new Float32Array([1, -1, 1, -1])), 10 * Math.log10(4), 1e-12, "MSE 1 → 6.02 dB");
  near(
    psnr(zeros, new Float32Array([0.5, 0.5, 0.5, 0.5]), { dataRange: 1 }),
    10 * Math.log10(4),
    1e-12,
    "L = 1, MSE 0.25",
  );
  throws(
    () => psnr(zeros, new Float32Array(3)),
    (e: Error) => e instanceof MetricError && /4 and 3/.test(e.message),
  );
});

Deno.test("SSIM: identical images give exactly 1", () => {
  const a = image(3, 32, 40, 2);
  strictEqual(ssim(a, a.slice(), [3, 32, 40]), 1);
  strictEqual(ssim(a, a.slice(), [1, 3, 32, 40]), 1);
});

Deno.test("SSIM of two flat images equals its closed form", () => {
  // Flat images: all variances are 0, so SSIM = (2ab + C1) / (a² + b² + C1), C1 = (0.01·2)².
  const a = new Float32Array(3 * 12 * 12).fill(0.25);
  const b = new Float32Array(3 * 12 * 12).fill(-0.5);
  const c1 = 0.02 ** 2;
  near(
    ssim(a, b, [3, 12, 12]),
    (2 * 0.25 * -0.5 + c1) / (0.25 ** 2 + 0.5 ** 2 + c1),
    1e-12,
    "flat",
  );
});

Deno.test("SSIM rejects images smaller than the window and mismatched shapes", () => {
  const small = new Float32Array(3 * 10 * 20);
  throws(
    () => ssim(small, small, [3, 10, 20]),
    (e: Error) => e instanceof MetricError && /at least 11×11 .* found 10×20/.test(e.message),
  );
  throws(
    () => ssim(small, small, [3, 20, 20]),
    (e: Error) => e instanceof MetricError && /needs 1200 values, found 600/.test(e.message),
  );
});

testIf(NUMPY, {
  name: "SSIM equals a numpy reference (2-D Gaussian windows, valid region)",
  fn: async () => {
    const [c, h, w] = [3, 37, 52];
    const a = image(c, h, w, 7);
    const pairs: [string, Float32Array][] = [
      ["noisy", a.map((v, i) => v + Math.sin(i * 12.9898) * 0.15)],
      ["shifted", a.map((v, i) => (i % w === 0 ? v : a[i - 1]))],
      ["other image", image(c, h, w, 99)],
      ["scaled", a.map((v) => v * 0.5 - 0.2)],
    ];
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeFile(`${dir}/a.f32`, new Uint8Array(a.buffer));
      for (const [i, [, b]] of pairs.entries()) {
        await Deno.writeFile(`${dir}/b${i}.f32`, new Uint8Array(b.buffer));
      }
      // An independent reference: the 11×11 window as one 2-D array applied to every valid
      // position (no separable passes), population statistics, per channel, then the mean.
      const script = `
import sys, json, numpy as np
from numpy.lib.stride_tricks import sliding_window_view
c, h, w, n = (int(v) for v in sys.argv[2:6])
def load(name):
    return np.fromfile(sys.argv[1] + "/" + name, dtype="<f4").reshape(c, h, w).astype(np.float64)
g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5 ** 2))
g /= g.sum()
win = np.outer(g, g)
C1, C2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
def filt(img):
    return np.einsum("ijkl,kl->ij", sliding_window_view(img, (11, 11)), win)
def ssim(x, y):
    total = 0.0
    for k in range(c):
        a, b = x[k], y[k]
        mx, my = filt(a), filt(b)
        vx = filt(a * a) - mx * mx
        vy = filt(b * b) - my * my
        cov = filt(a * b) - mx * my
        s = ((2 * mx * my + C1) * (2 * cov + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2))
        total += s.mean()
    return total / c
a = load("a.f32")
print(json.dumps([ssim(a, load("b%d.f32" % i)) for i in range(n)]))
`;
      const { code, stdout, stderr } = new Deno.Command(PYTHON, {
        args: ["-c", script, dir, `${c}`, `${h}`, `${w}`, `${pairs.length}`],
      }).outputSync();
      strictEqual(code, 0, new TextDecoder().decode(stderr));
      const expected: number[] = JSON.parse(new TextDecoder().decode(stdout));
      pairs.forEach(([name, b], i) => {
        const found = ssim(a, b, [c, h, w]);
        near(found, expected[i], 1e-10, `SSIM of ${name}`);
      });
      // The pairs span a real range, so agreement is not a coincidence of values near 1.
      ok(Math.min(...expected) < 0.5 && Math.max(...expected) > 0.8, `range ${expected}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("SSIM of a 3×256×256 image takes milliseconds", () => {
  const a = image(3, 256, 256, 3);
  const b = image(3, 256, 256, 4);
  ssim(a, b, [3, 256, 256]);
  const runs = 10;
  // CPU time, not wall time: the suite runs test files in parallel on few cores.
  const start = process.cpuUsage();
  for (let i = 0; i < runs; i++) ssim(a, b, [3, 256, 256]);
  const used = process.cpuUsage(start);
  const each = (used.user + used.system) / 1000 / runs;
  console.log(`SSIM 3×256×256: ${each.toFixed(1)} ms of CPU`);
  // Generous bound; the figure printed above is the one to read.
  ok(each < 250, `${each} ms`);
});

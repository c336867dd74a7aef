/**
 * `adamUpdate` itself: the reference values, non-finite gradients, shapes. The loop that drives
 * it (per-image states, schedules, batches) is tested through `optimizeLatents` in
 * optim_loop_test.ts.
 */
import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  AdamShapeError,
  adamUpdate,
  createAdamState,
  NonFiniteGradientError,
} from "../lib/optim/adam.ts";

Deno.test("Adam matches the reference for three steps (lr 0.1)", () => {
  // Step 1 moves each element by lr·sign(g) (m̂ = g, v̂ = g²); element 0 at step 2 by hand:
  // m = 0.9·0.05 + 0.1·0.25 = 0.07, v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225,
  // p = 0.9 − 0.1 · (0.07/0.19) / √(0.00031225/0.001999) = 0.806782.
  // All values: the same formula in numpy, float64 arithmetic stored as float32 after each
  // operation on a stored value, so the results agree to the bit.
  const params = new Float32Array([1, -2, 0]);
  const state = createAdamState(3);
  const grads = [[0.5, -1, 0], [0.25, 1, 2], [-0.75, 0.5, -3]];
  const expected = [
    {
      p: [0.8999999761581421, -1.899999976158142, 0],
      m: [0.05000000074505806, -0.10000000149011612, 0],
      v: [0.0002500000118743628, 0.0010000000474974513, 0],
    },
    {
      p: [0.8067820072174072, -1.9052631855010986, -0.07441367954015732],
      m: [0.07000000029802322, 0.009999998845160007, 0.20000000298023224],
      v: [0.0003122500202152878, 0.0019990000873804092, 0.004000000189989805],
    },
    {
      p: [0.8149796724319458, -1.9304065704345703, -0.05314940586686134],
      m: [-0.012000000104308128, 0.05900000035762787, -0.11999999731779099],
      v: [0.0008744377992115915, 0.0022470010444521904, 0.012996000237762928],
    },
  ];
  grads.forEach((g, i) => {
    adamUpdate(params, new Float32Array(g), state, 0.1);
    strictEqual(state.step, i + 1);
    deepStrictEqual(Array.from(params), expected[i].p, `params after step ${i + 1}`);
    deepStrictEqual(Array.from(state.m), expected[i].m, `m after step ${i + 1}`);
    deepStrictEqual(Array.from(state.v), expected[i].v, `v after step ${i + 1}`);
  });
});

Deno.test("a non-finite gradient fails with its step and changes nothing", () => {
  const params = new Float32Array([1, 2, 3]);
  const state = createAdamState(3);
  adamUpdate(params, new Float32Array([1, 1, 1]), state, 0.1);
  const before = params.slice();
  const moments = state.m.slice();
  throws(
    () => adamUpdate(params, new Float32Array([1, NaN, 1]), state, 0.1),
    (e: Error) =>
      e instanceof NonFiniteGradientError && e.step === 2 && e.index === 1 &&
      e.message === "gradient at step 2 holds NaN at element 1; expected finite values",
  );
  throws(
    () => adamUpdate(params, new Float32Array([1, 1, -Infinity]), state, 0.1),
    (e: Error) => e instanceof NonFiniteGradientError && /-Infinity at element 2/.test(e.message),
  );
  deepStrictEqual(params, before);
  deepStrictEqual(state.m, moments);
  strictEqual(state.step, 1);
});

Deno.test("mismatched lengths are rejected with the lengths found", () => {
  throws(
    () => adamUpdate(new Float32Array(4), new Float32Array(3), createAdamState(4), 0.1),
    (e: Error) => e instanceof AdamShapeError && /found 4, 3, 4, 4/.test(e.message),
  );
});

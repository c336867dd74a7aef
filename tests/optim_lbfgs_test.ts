/**
 * L-BFGS's parts on pure numeric functions: the strong-Wolfe line search, the memory and its
 * two-loop recursion, and the method as the loop drives it (Rosenbrock's valley).
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { decodeCheckpoint, encodeCheckpoint } from "../lib/optim/checkpoint.ts";
import { dot, LbfgsMemory } from "../lib/optim/lbfgs.ts";
import { LbfgsMethod } from "../lib/optim/lbfgs_method.ts";
import { cubicInterpolate, type LineSearchResult, strongWolfe } from "../lib/optim/line_search.ts";

/** Runs a line search on f along d = 1 from 0, counting evaluations. */
function search(f: (t: number) => number, df: (t: number) => number, t0: number) {
  const at = (t: number) => ({ f: f(t), g: new Float32Array([df(t)]), gtd: df(t) });
  const gen = strongWolfe({ ...at(0), t: t0, dNorm: 1 });
  const tried: number[] = [];
  let step = gen.next();
  while (!step.done) {
    tried.push(step.value);
    step = gen.next(at(step.value));
  }
  return { result: step.value as LineSearchResult, tried };
}

Deno.test("cubic interpolation: exact on a cubic, clamped to its bounds, halfway without a minimum", () => {
  // f(t) = t³ − 3t (minimum at 1) from its values and slopes at 0 and 2.
  strictEqual(cubicInterpolate(0, 0, -3, 2, 2, 9), 1);
  strictEqual(cubicInterpolate(2, 2, 9, 0, 0, -3), 1, "the points in either order");
  strictEqual(cubicInterpolate(0, 0, -3, 2, 2, 9, [1.5, 20]), 1.5, "clamped to the bounds");
  // A concave piece (no minimizer between the points): the middle of the bounds.
  strictEqual(cubicInterpolate(0, 0, 3, 1, 2, 3), 0.5);
  strictEqual(cubicInterpolate(1, 0, -1, 1, 0, -1, [2, 4]), 3, "equal points: the middle");
});

Deno.test("strong Wolfe: every accepted step meets both conditions", () => {
  const cases: [string, (t: number) => number, (t: number) => number, number][] = [
    ["quadratic, short first step", (t) => (t - 3) ** 2, (t) => 2 * (t - 3), 0.01],
    ["quadratic, long first step", (t) => (t - 3) ** 2, (t) => 2 * (t - 3), 50],
    ["quartic", (t) => (t - 1) ** 4 - t, (t) => 4 * (t - 1) ** 3 - 1, 1],
    [
      "wiggly",
      (t) => Math.sin(3 * t) - t / 2 + t * t / 10,
      (t) => 3 * Math.cos(3 * t) - 0.5 + t / 5,
      2,
    ],
    [
      "steep then flat",
      (t) => Math.exp(-4 * t) + t / 100,
      (t) => -4 * Math.exp(-4 * t) + 1 / 100,
      1,
    ],
  ];
  for (const [name, f, df, t0] of cases) {
    const { result, tried } = search(f, df, t0);
    const sufficient = result.f <= f(0) + 1e-4 * result.t * df(0);
    const curvature = Math.abs(df(result.t)) <= 0.9 * Math.abs(df(0));
    ok(sufficient && curvature, `${name}: t ${result.t} after ${tried}`);
    strictEqual(result.evaluations, tried.length, name);
    strictEqual(result.f, f(result.t), `${name}: the values of the step returned`);
  }
});

Deno.test("strong Wolfe: a value that never falls gives back the start; a slope that never ends, the last step", () => {
  // The slope says down, the value never falls (an inconsistent oracle): the bracket [0, t]
  // shrinks until it is narrower than 1e-9, and the search returns where it started.
  const stuck = strongWolfe({ f: 1, g: new Float32Array([-1]), gtd: -1, t: 1, dNorm: 1 });
  let step = stuck.next();
  let evaluations = 0;
  while (!step.done) {
    evaluations++;
    step = stuck.next({ f: 1, g: new Float32Array([-1]), gtd: -1 });
  }
  deepStrictEqual([step.value.t, step.value.f, step.value.evaluations], [0, 1, evaluations]);
  ok(evaluations < 26, `${evaluations} evaluations`);
  // Down a slope that stays steep: extrapolation never brackets; after 1 + 25 evaluations the
  // last step, lower than the start, is taken.
  const steep = strongWolfe({ f: 1, g: new Float32Array([-1]), gtd: -1, t: 1, dNorm: 1 });
  step = steep.next();
  let n = 0;
  while (!step.done) {
    n++;
    const t = step.value;
    step = steep.next({ f: 1 - t, g: new Float32Array([-1]), gtd: -1 });
  }
  strictEqual(n, 26);
  ok(step.value.t > 1 && step.value.f === 1 - step.value.t, `${step.value.t}`);
});

Deno.test("memory: keeps the newest pairs, refuses non-positive curvature, restores bit for bit", () => {
  const memory = new LbfgsMemory(3, 2);
  const v = (...x: number[]) => new Float32Array(x);
  ok(memory.push(v(1, 0, 0), v(2, 0, 0)));
  ok(!memory.push(v(0, 1, 0), v(0, -1, 0)), "yᵀs < 0 is refused");
  ok(!memory.push(v(0, 1, 0), v(1, 0, 0)), "yᵀs = 0 is refused");
  ok(memory.push(v(0, 1, 0), v(0, 3, 0)));
  ok(memory.push(v(0, 0, 1), v(0, 0, 4)));
  strictEqual(memory.length, 2, "the oldest pair made room");
  const d = new Float32Array(3);
  memory.direction(v(1, 1, 1), d);
  // Pairs for axes 1 and 2 give exact curvatures 3 and 4 there; axis 0 takes γ = 1/4.
  deepStrictEqual(Array.from(d), [-0.25, -1 / 3, -0.25].map(Math.fround));
  const saved = memory.save();
  const bytes = encodeCheckpoint({ method: "lbfgs", ...saved });
  const back = LbfgsMemory.restore(decodeCheckpoint(bytes), 3, 2, "checkpoint");
  const again = new Float32Array(3);
  back.direction(v(1, 1, 1), again);
  deepStrictEqual(again, d);
  throws(() => LbfgsMemory.restore(decodeCheckpoint(bytes), 3, 1, "checkpoint of x"), {
    message: "checkpoint of x: expected at most 1 L-BFGS pairs, found 2",
  });
  strictEqual(dot(v(1, 2, 3), v(4, 5, 6)), 32);
});

Deno.test("the method finds the bottom of Rosenbrock's valley in float32", () => {
  // f(x, y) = (1 − x)² + 100 (y − x²)², from (−1.2, 1).
  const f = (p: Float32Array) => (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2;
  const g = (p: Float32Array) =>
    new Float32Array([
      -2 * (1 - p[0]) - 400 * p[0] * (p[1] - p[0] ** 2),
      200 * (p[1] - p[0] ** 2),
    ]);
  const lbfgs = LbfgsMethod.start(new Float32Array([-1.2, 1]), { history: 10, lr: 1 });
  let passes = 0;
  let best = Infinity;
  let stop = null;
  while (passes < 200 && stop === null) {
    const p = lbfgs.point.slice();
    const value = f(p);
    best = Math.min(best, value);
    const seen = lbfgs.observe(value, g(p), ++passes);
    stop = seen.stop ?? lbfgs.advance();
  }
  ok(best < 1e-8, `best ${best} after ${passes} passes (${stop})`);
  ok(passes < 80, `${passes} passes`);
  strictEqual(stop, "converged");
  ok(Math.abs(lbfgs.point[0] - 1) < 1e-3 && Math.abs(lbfgs.point[1] - 1) < 1e-3);
});

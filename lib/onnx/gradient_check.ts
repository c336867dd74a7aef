/**
 * Directional finite-difference checks of the derived gradients against forward evaluations
 * in ONNX Runtime: |⟨∇f, v⟩ − D_v f| relative to their size, D_v f the five-point central
 * difference (f(x−2εv) − 8f(x−εv) + 8f(x+εv) − f(x+2εv)) / 12ε, for
 * f(x) = Σ r·y + ½ Σ y² over the graph's outputs y (r fixed random), summed in float64.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { foldGraph } from "./fold.ts";
import type { Graph } from "./graph.ts";
import { encodeModel } from "./model_io.ts";
import { openSession } from "./session.ts";
import { sizeOf } from "./tensor.ts";
import { buildVjpGraph } from "./vjp_graph.ts";
import { seededRandom } from "../base/random.ts";

/** Options of {@link checkGradient}. */
export interface GradientCheckOptions {
  /** Concrete shape of each graph input. */
  inputShapes: Record<string, number[]>;
  /** Input values (default: uniform in [-1, 1] from `seed`). */
  inputs?: Record<string, Float32Array>;
  /** Inputs to differentiate (default: all). */
  wrt?: string[];
  /** Step length (default 1e-2; the stencil also evaluates at ±2ε). */
  eps?: number;
  /** Seed of the pseudo-random inputs, direction and r (default 1). */
  seed?: number;
}

/** Result of a check: the two directional derivatives and their relative difference. */
export interface GradientCheckResult {
  analytic: number;
  numeric: number;
  relativeError: number;
}

/**
 * Checks a graph's derived gradient in one random direction.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * const x = b.input("x", 1, [1, 4, 8, 8]);
 * b.output(b.node("Mul", [x, b.node("Sigmoid", [x])]), 1, [1, 4, 8, 8]);
 * const r = await checkGradient(b.graph, { inputShapes: { x: [1, 4, 8, 8] } });
 * assert.ok(r.relativeError < 1e-3, `gradient mismatch: ${r.relativeError}`);
 * ```
 */
export async function checkGradient(
  graph: Graph,
  { inputShapes, inputs, wrt, eps = 1e-2, seed = 1 }: GradientCheckOptions,
): Promise<GradientCheckResult> {
  const rand = seededRandom(seed);
  const vjp = buildVjpGraph(graph, { inputShapes, wrt });
  const folded = foldGraph(graph, { inputShapes });
  folded.graph.inputs = folded.graph.inputs.map((v) => ({ ...v, dims: inputShapes[v.name] }));
  const opts = { providers: ["cpu"], intraOpThreads: 1 };
  const fwd = (await openSession(encodeModel(folded.graph), opts)).session;
  const back = (await openSession(vjp.bytes, opts)).session;
  const x: Record<string, Float32Array> = {};
  for (const v of graph.inputs) {
    x[v.name] = inputs?.[v.name] ??
      Float32Array.from({ length: sizeOf(inputShapes[v.name]) }, () => rand() * 2 - 1);
  }
  const targets = wrt ?? graph.inputs.map((v) => v.name);
  const dir: Record<string, Float32Array> = {};
  for (const w of targets) dir[w] = Float32Array.from(x[w], () => rand() * 2 - 1);
  const r: Record<string, Float64Array> = {};
  for (const [o, dims] of Object.entries(vjp.outputShapes)) {
    r[o] = Float64Array.from({ length: sizeOf(dims) }, () => rand() * 2 - 1);
  }
  const feeds = (vals: Record<string, Float32Array>) =>
    Object.fromEntries(
      graph.inputs.map((
        v,
      ) => [v.name, new ort.Tensor("float32", vals[v.name], inputShapes[v.name])]),
    );
  const run = async (vals: Record<string, Float32Array>) => {
    const out = await fwd.run(feeds(vals));
    const ys: Record<string, Float32Array> = {};
    for (const o of Object.keys(vjp.outputShapes)) ys[o] = out[o].data as Float32Array;
    return ys;
  };
  const f = (ys: Record<string, Float32Array>) => {
    let s = 0;
    for (const [o, y] of Object.entries(ys)) {
      for (let i = 0; i < y.length; i++) s += r[o][i] * y[i] + 0.5 * y[i] * y[i];
    }
    return s;
  };
  const y0 = await run(x);
  const seedFeeds: Record<string, ort.Tensor> = feeds(x);
  for (const [o, y] of Object.entries(y0)) {
    const g = Float32Array.from(y, (v, i) => r[o][i] + v);
    seedFeeds[vjp.seeds[o]] = new ort.Tensor("float32", g, vjp.outputShapes[o]);
  }
  const grads = await back.run(seedFeeds);
  const shifted = (k: number) => {
    const vals = { ...x };
    for (const w of targets) vals[w] = Float32Array.from(x[w], (v, i) => v + k * eps * dir[w][i]);
    return vals;
  };
  // Five-point stencil: truncation error O(ε⁴), so ε can be large enough to drown float32 noise.
  // The gradient is projected on the steps float32 actually took, not on the nominal ones.
  const steps = [1, -1, 2, -2].map(shifted);
  const weights = [8, -8, -1, 1];
  let analytic = 0;
  for (const w of targets) {
    const g = grads[vjp.gradients[w]].data as Float32Array;
    for (let i = 0; i < g.length; i++) {
      let d = 0;
      for (let k = 0; k < 4; k++) d += weights[k] * (steps[k][w][i] - x[w][i]);
      analytic += (g[i] * d) / (12 * eps);
    }
  }
  let numeric = 0;
  for (let k = 0; k < 4; k++) numeric += (weights[k] * f(await run(steps[k]))) / (12 * eps);
  fwd.release();
  back.release();
  const scale = Math.max(Math.abs(analytic), Math.abs(numeric), 1e-12);
  return { analytic, numeric, relativeError: Math.abs(analytic - numeric) / scale };
}

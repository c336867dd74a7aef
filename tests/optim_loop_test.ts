/**
 * The optimize loop (`optimizeLatents`) driving Adam and L-BFGS over a pure numeric decoder:
 * results that do not depend on the batch, the pass budget, steps and passes recorded, progress,
 * and images failing on their own.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { OptimizeResult, OptimizerSettings } from "../lib/optim/latent_optimizer.ts";
import {
  numericEvaluator,
  numericJobs,
  numericSettings,
  runLoop,
} from "./fixtures/numeric_evaluator.ts";

const METHODS = [
  { method: "adam", lr: 0.05 },
  { method: "lbfgs", lr: 1 },
] as const;

function resultOf(run: { results: Map<string, OptimizeResult | Error> }, id: string) {
  const r = run.results.get(id);
  if (!r || r instanceof Error) throw new Error(`${id}: expected a result, found ${r}`);
  return r;
}

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

async function optimize(settings: OptimizerSettings, count: number) {
  const jobs = numericJobs(count, settings);
  const evaluator = numericEvaluator(settings, jobs);
  return { run: await runLoop(settings, evaluator, jobs), evaluator, jobs };
}

for (const { method, lr } of METHODS) {
  Deno.test(`${method}: an image's result does not depend on its batch or slot`, async () => {
    const base = numericSettings({ method, lr, maxSteps: 30, patience: 4, tolerance: 1e-4 });
    const alone = await optimize({ ...base, batch: 1 }, 6);
    const four = await optimize({ ...base, batch: 4 }, 6);
    // Reversed order: every image sits in another slot, next to other images.
    const jobs = numericJobs(6, base).reverse();
    const three = await runLoop({ ...base, batch: 3 }, numericEvaluator(base, jobs), jobs);
    for (const id of alone.jobs.map((j) => j.id)) {
      const want = resultOf(alone.run, id);
      for (const other of [four.run, three]) {
        const got = resultOf(other, id);
        deepStrictEqual(bits(got.latent), bits(want.latent), `${id}: latent bits`);
        deepStrictEqual(
          [got.steps, got.passes, got.stop, got.lossFinal, got.psnrFinal, got.ssimFinal],
          [want.steps, want.passes, want.stop, want.lossFinal, want.psnrFinal, want.ssimFinal],
        );
        deepStrictEqual(got.curve, want.curve);
      }
    }
    // The batch of 4 stayed full while images remained: 6 images in fewer evaluations than alone.
    ok(four.evaluator.evaluations < alone.evaluator.evaluations);
  });
}

Deno.test("max_passes: each method stops after exactly that many evaluations", async () => {
  for (const { method, lr } of METHODS) {
    const settings = numericSettings({ method, lr, maxSteps: 1000, maxPasses: 9 });
    const { run, evaluator } = await optimize(settings, 2);
    for (const id of ["img0", "img1"]) {
      const r = resultOf(run, id);
      strictEqual(r.stop, "max_passes", `${method} ${id}`);
      strictEqual(r.passes, 9, `${method} ${id}: passes`);
      strictEqual(evaluator.passesOf.get(id), 9, `${method} ${id}: evaluations seen`);
      strictEqual(r.computedPasses, 9);
      // Adam updates after every evaluation but the last; L-BFGS's line searches take more.
      if (method === "adam") strictEqual(r.steps, 8);
      else ok(r.steps >= 1 && r.steps < 8, `lbfgs ${id}: ${r.steps} steps in 9 passes`);
      deepStrictEqual(r.curve.passes, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
      strictEqual(r.curve.steps.length, r.steps + 1);
    }
  }
});

Deno.test("max_steps and max_passes: whichever comes first stops the image", async () => {
  const settings = numericSettings({ maxSteps: 5, maxPasses: 50 });
  const { run } = await optimize(settings, 1);
  const r = resultOf(run, "img0");
  deepStrictEqual([r.stop, r.steps, r.passes], ["max_steps", 5, 6]);
  const lbfgs = numericSettings({ method: "lbfgs", lr: 1, maxSteps: 3, maxPasses: 50 });
  const l = resultOf((await optimize(lbfgs, 1)).run, "img0");
  strictEqual(l.stop, "max_steps");
  strictEqual(l.steps, 3);
  ok(l.passes >= 4 && l.passes < 50, `${l.passes} passes`);
});

Deno.test("the PSNR-per-pass curve is that of the best latent so far, never falling", async () => {
  const settings = numericSettings({ method: "lbfgs", lr: 1, maxSteps: 1000, maxPasses: 10 });
  const r = resultOf((await optimize(settings, 1)).run, "img0");
  strictEqual(r.curve.psnr.length, 10);
  for (let k = 1; k < r.curve.psnr.length; k++) {
    ok(r.curve.psnr[k] >= r.curve.psnr[k - 1], `pass ${k + 1}: ${r.curve.psnr}`);
  }
  strictEqual(r.curve.psnr[9], r.psnrFinal);
  strictEqual(r.curve.psnr[0], r.psnrInitial);
  ok(r.psnrFinal > r.psnrInitial + 1, `${r.psnrInitial} → ${r.psnrFinal} dB`);
});

Deno.test("progress hears every pass of every image, with its steps", async () => {
  const settings = numericSettings({ method: "lbfgs", lr: 1, batch: 2, maxPasses: 7 });
  const { run } = await optimize(settings, 3);
  strictEqual(run.progress.length, 3 * 7);
  for (const id of ["img0", "img1", "img2"]) {
    const mine = run.progress.filter((p) => p.id === id);
    deepStrictEqual(mine.map((p) => p.passes), [1, 2, 3, 4, 5, 6, 7]);
    strictEqual(mine.at(-1)!.steps, resultOf(run, id).steps);
  }
});

Deno.test("a NaN loss or an infinite gradient fails that image alone, naming step and pass", async () => {
  for (const { method, lr } of METHODS) {
    const settings = numericSettings({ method, lr, batch: 2, maxPasses: 10 });
    const jobs = numericJobs(3, settings);
    const evaluator = numericEvaluator(settings, jobs, {
      nanLoss: { id: "img1", pass: 4 },
      infiniteGradient: { id: "img2", pass: 6 },
    });
    const run = await runLoop(settings, evaluator, jobs);
    const nan = run.results.get("img1");
    ok(nan instanceof Error && nan.name === "NonFiniteError", `${method}: ${nan}`);
    ok(/^loss is NaN at step \d+ \(pass 4\)$/.test(nan.message), nan.message);
    const inf = run.results.get("img2");
    ok(inf instanceof Error && /^gradient is Infinity at step \d+/.test(inf.message), `${inf}`);
    strictEqual(resultOf(run, "img0").passes, 10, `${method}: the other image goes on`);
  }
});

Deno.test("Adam with a cosine schedule reaches a reachable target through the loop", async () => {
  const settings = numericSettings({
    lr: 0.05,
    schedule: "cosine",
    warmupSteps: 10,
    maxSteps: 400,
  });
  const hidden = Float32Array.from({ length: 24 }, (_, j) => Math.sin(j) * 0.5);
  const target = numericEvaluator(settings, []).decode(hidden);
  const jobs = [{ id: "img0", latent: new Float32Array(24), target }];
  const run = await runLoop(settings, numericEvaluator(settings, jobs), jobs);
  const r = resultOf(run, "img0");
  deepStrictEqual([r.stop, r.steps, r.passes], ["max_steps", 400, 401]);
  ok(r.lossFinal < r.lossInitial * 1e-4, `loss ${r.lossInitial} → ${r.lossFinal}`);
});

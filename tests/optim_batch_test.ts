/**
 * On ONNX Runtime's CPU provider, an image's optimized latent does not depend on the batch it ran
 * in or on its slot: the same bits at batch 1 and batch 4, for Adam and L-BFGS, over the derived
 * loss-and-gradient graph of a small generated decoder. (This is what lets `optimize.batch_size`
 * stay out of the action key.)
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { seededRandom } from "../lib/base/random.ts";
import { gradientEvaluator } from "../lib/model/evaluators.ts";
import { LatentNormalization } from "../lib/model/normalization.ts";
import { writeModel } from "../lib/onnx/model_io.ts";
import type { OptimizeResult, OptimizerSettings } from "../lib/optim/latent_optimizer.ts";
import { runLoop } from "./fixtures/numeric_evaluator.ts";
import { tinySdDecoder } from "./fixtures/vae.ts";

const SIDE = 8;
const N = 4 * SIDE * SIDE;
const SIZE = 3 * 64 * 64;

Deno.test("CPU: the same latents, bit for bit, at batch 1 and batch 4 (Adam and L-BFGS)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-optim-batch-" });
  try {
    await writeModel(`${dir}/vae_decoder.onnx`, tinySdDecoder());
    const rand = seededRandom(11);
    // Five images: at batch 4 the fifth takes the slot of whichever finished first.
    const jobs = Array.from({ length: 5 }, (_, i) => ({
      id: `img${i}`,
      latent: Float32Array.from({ length: N }, () => rand() * 2 - 1),
      target: Float32Array.from({ length: SIZE }, (_, k) => Math.sin(k * 0.01 * (i + 1)) * 0.7),
    }));
    const evaluator = (batch: number) =>
      gradientEvaluator(`${dir}/vae_decoder.onnx`, "decoder", {
        batch,
        latentShape: [4, SIDE, SIDE],
        normalization: LatentNormalization.of(4, { scaling_factor: 1 }),
        loss: "l2",
        charbonnierEps: 1e-3,
      }, { providers: ["cpu"], threads: 2, log: () => {} });
    const one = await evaluator(1), four = await evaluator(4);
    for (
      const method of [
        { method: "adam", lr: 0.1, maxSteps: 10, patience: 3, tolerance: 1e-3 },
        { method: "lbfgs", lr: 1, maxSteps: 1000, maxPasses: 14, patience: 1000, tolerance: 0 },
      ] as const
    ) {
      const settings = (batch: number): OptimizerSettings => ({
        batch,
        latentSize: N,
        imageShape: [3, 64, 64],
        schedule: "constant",
        warmupSteps: 0,
        checkpointEvery: 1000,
        dataRange: 2,
        ...method,
      });
      const a = await runLoop(settings(1), one, jobs);
      const b = await runLoop(settings(4), four, jobs);
      for (const { id } of jobs) {
        const x = a.results.get(id) as OptimizeResult, y = b.results.get(id) as OptimizeResult;
        strictEqual(x instanceof Error || y instanceof Error, false, `${method.method} ${id}`);
        deepStrictEqual(
          new Uint32Array(y.latent.buffer),
          new Uint32Array(x.latent.buffer),
          `${method.method} ${id}: latent bits`,
        );
        deepStrictEqual([y.steps, y.passes, y.stop], [x.steps, x.passes, x.stop]);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

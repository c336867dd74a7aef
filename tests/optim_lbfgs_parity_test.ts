/**
 * Parity with PyTorch: on a small generated SD-shaped decoder, latentforge's L-BFGS (the optimize
 * loop over the derived loss-and-gradient graph on ONNX Runtime, two images per batch) and
 * `torch.optim.LBFGS(history_size=10, line_search_fn="strong_wolfe")` (one image at a time,
 * autograd through the same folded graph) start from the same latents and count passes the same
 * way (each loss-and-gradient evaluation, each closure call). They must reach the same mean PSNR
 * within 0.05 dB at 20 and 40 passes, and, since they take the same steps, nearly the same loss at
 * every pass.
 */
import { ok, strictEqual } from "node:assert/strict";
import { seededRandom } from "../lib/base/random.ts";
import { gradientEvaluator } from "../lib/model/evaluators.ts";
import { LatentNormalization } from "../lib/model/normalization.ts";
import { writeModel } from "../lib/onnx/model_io.ts";
import { optimizeLatents, type OptimizeResult } from "../lib/optim/latent_optimizer.ts";
import { pythonRequirement } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";
import { runTorchLbfgs, writeTorchGraph } from "./fixtures/torch_graph.ts";
import { tinySdDecoder } from "./fixtures/vae.ts";

const TORCH = pythonRequirement("numpy, torch");
const SIDE = 8; // latent 4×8×8 → image 3×64×64
const IMAGES = 4;
const PASSES = 40;

const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const db = (mse: number) => 10 * Math.log10(4 / mse);

testIf(TORCH, {
  name: "L-BFGS: the same mean PSNR as torch.optim.LBFGS within 0.05 dB at 20 and 40 passes",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-lbfgs-parity-" });
    try {
      const graph = tinySdDecoder();
      await writeModel(`${dir}/vae_decoder.onnx`, graph);
      const n = 4 * SIDE * SIDE, size = 3 * 64 * 64;
      const rand = seededRandom(5);
      const latents = Float32Array.from({ length: IMAGES * n }, () => rand() * 2 - 1);
      // Smooth patterns with some noise, different per image.
      const targets = Float32Array.from(
        { length: IMAGES * size },
        (_, k) => Math.sin(k * 0.013 + Math.floor(k / size)) * 0.6 + (rand() - 0.5) * 0.2,
      );
      const normalization = LatentNormalization.of(4, { scaling_factor: 1 });
      const evaluator = await gradientEvaluator(`${dir}/vae_decoder.onnx`, "decoder", {
        batch: 2,
        latentShape: [4, SIDE, SIDE],
        normalization,
        loss: "l2",
        charbonnierEps: 1e-3,
      }, { providers: ["cpu"], threads: 1, log: () => {} });
      const jobs = Array.from({ length: IMAGES }, (_, i) => ({
        id: `img${i}`,
        latent: latents.slice(i * n, (i + 1) * n),
        target: targets.slice(i * size, (i + 1) * size),
      }));
      const results = new Map<string, OptimizeResult | Error>();
      const pending = [...jobs];
      await optimizeLatents({
        settings: {
          batch: 2,
          latentSize: n,
          imageShape: [3, 64, 64],
          method: "lbfgs",
          lr: 1,
          schedule: "constant",
          warmupSteps: 0,
          maxSteps: 1000,
          maxPasses: PASSES,
          patience: 1000,
          tolerance: 0,
          checkpointEvery: 1000,
          dataRange: 2,
        },
        evaluator,
        signal: new AbortController().signal,
        next: (max) => Promise.resolve(pending.splice(0, max)),
        save: () => Promise.resolve(),
        done: (id, r) => Promise.resolve(void results.set(id, r)),
      });
      // The graph the loss-and-gradient graph differentiates: the decoder of the stored latent.
      await writeTorchGraph(normalization.decoderFromStored(graph), [1, 4, SIDE, SIDE], dir);
      const torch = await runTorchLbfgs({
        graphDir: dir,
        latents: { shape: [IMAGES, 4, SIDE, SIDE], data: latents },
        targets: { shape: [IMAGES, 3, 64, 64], data: targets },
        passes: PASSES,
        history: 10,
        lr: 1,
        threads: 1,
        workDir: dir,
      });
      const ours = jobs.map(({ id }) => {
        const r = results.get(id);
        if (!(r && !(r instanceof Error))) throw new Error(`${id}: ${r}`);
        return r;
      });
      for (const r of ours) strictEqual(r.passes, PASSES, `${r.id}: passes`);
      for (const losses of torch.losses) strictEqual(losses.length, PASSES, "torch's passes");
      for (const k of [20, 40]) {
        const mine = mean(ours.map((r) => r.curve.psnr[k - 1]));
        const theirs = mean(torch.losses.map((l) => db(Math.min(...l.slice(0, k)))));
        ok(
          Math.abs(mine - theirs) <= 0.05,
          `after ${k} passes: latentforge ${mine.toFixed(4)} dB, torch ${theirs.toFixed(4)} dB`,
        );
        ok(mine > mean(ours.map((r) => r.psnrInitial)) + 1, `after ${k} passes: a real gain`);
      }
      // The same line searches: after each of the first 20 passes, nearly the same best PSNR.
      ours.forEach((r, i) => {
        for (let k = 1; k <= 20; k++) {
          const theirs = db(Math.min(...torch.losses[i].slice(0, k)));
          ok(
            Math.abs(r.curve.psnr[k - 1] - theirs) <= 0.01,
            `${r.id}, pass ${k}: latentforge ${r.curve.psnr[k - 1]} dB, torch ${theirs} dB`,
          );
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

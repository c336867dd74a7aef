/**
 * The optimize stage's own loop (`optimizeLatents`) run to completion over a list of images, as
 * the benchmarks time it: no checkpoints, every evaluation's start recorded.
 *
 * @module
 */
import {
  type BatchEvaluator,
  type OptimizeJob,
  optimizeLatents,
  type OptimizeResult,
  type OptimizerSettings,
} from "../lib/optim/latent_optimizer.ts";

/** Raised when an image fails in a benchmark's loop; the message names it. */
export class BenchLoopError extends Error {
  override readonly name = "BenchLoopError";
}

/**
 * Runs the loop over `jobs`; returns each image's result in job order, the wall time, and the
 * start of every batch evaluation (`performance.now()` milliseconds).
 */
export async function runOptimizeLoop(
  settings: OptimizerSettings,
  evaluator: BatchEvaluator,
  jobs: readonly OptimizeJob[],
): Promise<{ seconds: number; starts: number[]; results: OptimizeResult[] }> {
  const pending = [...jobs];
  const results = new Map<string, OptimizeResult>();
  const starts: number[] = [];
  const started = performance.now();
  await optimizeLatents({
    settings,
    evaluator: {
      evaluate(latents, targets, anchors) {
        starts.push(performance.now());
        return evaluator.evaluate(latents, targets, anchors);
      },
    },
    signal: new AbortController().signal,
    next: (max) => Promise.resolve(pending.splice(0, max)),
    save: () => Promise.resolve(),
    done(id, result) {
      if (result instanceof Error) {
        return Promise.reject(new BenchLoopError(`${id}: ${result.message}`));
      }
      results.set(id, result);
      return Promise.resolve();
    },
  });
  const seconds = (performance.now() - started) / 1000;
  return { seconds, starts, results: jobs.map((j) => results.get(j.id)!) };
}

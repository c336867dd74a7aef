import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import {
  downsampleCurve,
  NonFiniteLossError,
  StoppingOptionsError,
  StoppingTracker,
} from "../lib/optim/stopping.ts";

function run(options: { patience: number; tolerance: number; maxSteps: number }, losses: number[]) {
  const tracker = new StoppingTracker(options);
  const results = losses.map((loss) => tracker.record(loss));
  return { tracker, results };
}

Deno.test("converges when the best loss improves less than tolerance over patience steps", () => {
  const { tracker, results } = run({ patience: 2, tolerance: 0.01, maxSteps: 100 }, [
    1.0,
    0.5,
    0.499, // vs best 2 steps before (1.0): 50.1% better, goes on
    0.498, // vs best 2 steps before (0.5): 0.4% better, stops
  ]);
  deepStrictEqual(results.map((r) => r.stop), [null, null, null, "converged"]);
  deepStrictEqual(results.map((r) => r.improved), [true, true, true, true]);
  strictEqual(tracker.bestLoss, 0.498);
  strictEqual(tracker.bestStep, 3);
  strictEqual(tracker.steps, 3);
  strictEqual(tracker.stop, "converged");
});

Deno.test("a loss that gets worse does not count; the best loss and step are kept", () => {
  const { tracker, results } = run({ patience: 3, tolerance: 0.05, maxSteps: 100 }, [
    10,
    8,
    9, // worse: best stays 8 at step 1
    7, // vs best at step 0 (10): 30% better
    7.5, // vs best at step 1 (8): 12.5% better
    7.2, // vs best at step 2 (8): 12.5% better
    6.9, // vs best at step 3 (7): 1.4% better → converged
  ]);
  deepStrictEqual(results.map((r) => r.improved), [true, true, false, true, false, false, true]);
  deepStrictEqual(results.map((r) => r.stop), [null, null, null, null, null, null, "converged"]);
  strictEqual(tracker.bestLoss, 6.9);
  strictEqual(tracker.bestStep, 6);
  deepStrictEqual(tracker.history, [10, 8, 9, 7, 7.5, 7.2, 6.9]);
});

Deno.test("stops at max_steps: after max_steps updates, i.e. max_steps + 1 losses", () => {
  const losses = Array.from({ length: 6 }, (_, k) => 100 / (k + 1)); // always improving a lot
  const { tracker, results } = run({ patience: 2, tolerance: 1e-3, maxSteps: 5 }, losses);
  deepStrictEqual(results.map((r) => r.stop), [null, null, null, null, null, "max_steps"]);
  strictEqual(tracker.steps, 5);
  throws(
    () => tracker.record(1),
    (e: Error) =>
      e instanceof StoppingOptionsError &&
      /after the optimization stopped \(max_steps\)/.test(e.message),
  );
});

Deno.test("converged wins when both apply at the same step; a zero best loss counts as converged", () => {
  const both = run({ patience: 1, tolerance: 0.1, maxSteps: 1 }, [1, 0.99]);
  strictEqual(both.results[1].stop, "converged");
  const zero = run({ patience: 1, tolerance: 0.1, maxSteps: 10 }, [0, 0]);
  strictEqual(zero.results[1].stop, "converged");
  const never = run({ patience: 1, tolerance: 0, maxSteps: 3 }, [1, 1, 1, 1]);
  deepStrictEqual(never.results.map((r) => r.stop), [null, null, null, "max_steps"]);
});

Deno.test("replaying a history resumes the same decisions", () => {
  const options = { patience: 3, tolerance: 0.05, maxSteps: 100 };
  const losses = [10, 8, 9, 7, 7.5, 7.2, 6.9];
  const resumed = new StoppingTracker(options, losses.slice(0, 4));
  strictEqual(resumed.bestLoss, 7);
  strictEqual(resumed.bestStep, 3);
  deepStrictEqual(losses.slice(4).map((l) => resumed.record(l).stop), [null, null, "converged"]);
});

Deno.test("a NaN or infinite loss fails with the step where it appeared", () => {
  const tracker = new StoppingTracker({ patience: 2, tolerance: 0.01, maxSteps: 10 });
  tracker.record(1);
  tracker.record(0.5);
  throws(
    () => tracker.record(NaN),
    (e: Error) =>
      e instanceof NonFiniteLossError && e.step === 2 &&
      e.message === "loss at step 2 is NaN; expected a finite number",
  );
  throws(
    () => tracker.record(Infinity),
    (e: Error) => e instanceof NonFiniteLossError && /Infinity/.test(e.message),
  );
});

Deno.test("invalid options are rejected with the value found", () => {
  throws(
    () => new StoppingTracker({ patience: 0, tolerance: 0.01, maxSteps: 10 }),
    (e: Error) => e instanceof StoppingOptionsError && /patience: .* found 0/.test(e.message),
  );
  throws(
    () => new StoppingTracker({ patience: 1, tolerance: -1, maxSteps: 10 }),
    (e: Error) => e instanceof StoppingOptionsError && /tolerance: .* found -1/.test(e.message),
  );
});

Deno.test("loss curves are downsampled to at most 200 points, keeping first and last", () => {
  const short = downsampleCurve([3, 2, 1]);
  deepStrictEqual(short, { steps: [0, 1, 2], losses: [3, 2, 1] });
  const losses = Array.from({ length: 1001 }, (_, k) => 1000 - k);
  const { steps, losses: kept } = downsampleCurve(losses);
  strictEqual(steps.length, 200);
  strictEqual(steps[0], 0);
  strictEqual(steps[199], 1000);
  for (let i = 1; i < steps.length; i++) strictEqual(steps[i] > steps[i - 1], true);
  deepStrictEqual(kept, steps.map((s) => 1000 - s));
  strictEqual(downsampleCurve(losses.slice(0, 200)).steps.length, 200);
  strictEqual(downsampleCurve(losses.slice(0, 201)).steps.length, 200);
  deepStrictEqual(downsampleCurve(losses, 3).steps, [0, 500, 1000]);
});

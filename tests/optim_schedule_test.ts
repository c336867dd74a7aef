import { ok, strictEqual, throws } from "node:assert/strict";
import { learningRate, ScheduleError } from "../lib/optim/schedule.ts";

function near(found: number, expected: number, what: string) {
  ok(Math.abs(found - expected) < 1e-12, `${what}: expected ${expected}, found ${found}`);
}

Deno.test("constant schedule is lr at every step", () => {
  for (const step of [0, 1, 50, 99, 100, 1000]) {
    strictEqual(learningRate({ kind: "constant", lr: 0.1, maxSteps: 100 }, step), 0.1);
  }
});

Deno.test("cosine schedule without warm-up: known values", () => {
  const at = (step: number) => learningRate({ kind: "cosine", lr: 0.1, maxSteps: 4 }, step);
  near(at(0), 0.1, "step 0");
  near(at(1), 0.1 * (1 + Math.SQRT1_2) / 2, "step 1"); // 0.0853553…
  near(at(2), 0.05, "step 2");
  near(at(3), 0.1 * (1 - Math.SQRT1_2) / 2, "step 3"); // 0.0146446…
  near(at(4), 0, "step 4");
  near(at(9), 0, "past max_steps");
});

Deno.test("cosine schedule with warm-up: linear ramp, then half at mid-decay, 0 at the end", () => {
  const options = { kind: "cosine" as const, lr: 0.1, maxSteps: 110, warmupSteps: 10 };
  near(learningRate(options, 0), 0.01, "first warm-up step");
  near(learningRate(options, 4), 0.05, "step 4");
  near(learningRate(options, 9), 0.1, "last warm-up step");
  near(learningRate(options, 10), 0.1, "first decay step");
  near(learningRate(options, 60), 0.05, "mid-decay");
  near(learningRate(options, 35), 0.1 * (1 + Math.SQRT1_2) / 2, "quarter of the decay");
  near(learningRate(options, 110), 0, "max_steps");
  let previous = Infinity;
  for (let step = 10; step <= 110; step++) {
    const lr = learningRate(options, step);
    ok(lr <= previous, `decay is monotone at step ${step}`);
    previous = lr;
  }
});

Deno.test("constant schedule honours warm-up too", () => {
  const options = { kind: "constant" as const, lr: 0.2, maxSteps: 50, warmupSteps: 4 };
  near(learningRate(options, 0), 0.05, "step 0");
  near(learningRate(options, 3), 0.2, "step 3");
  near(learningRate(options, 40), 0.2, "step 40");
});

Deno.test("warm-up as long as max_steps leaves 0 afterwards, not NaN", () => {
  const options = { kind: "cosine" as const, lr: 0.1, maxSteps: 5, warmupSteps: 5 };
  near(learningRate(options, 4), 0.1, "end of warm-up");
  strictEqual(learningRate(options, 5), 0);
});

Deno.test("invalid schedules are rejected with the value found", () => {
  const reject = (fn: () => unknown, pattern: RegExp) =>
    throws(fn, (e: Error) => e instanceof ScheduleError && pattern.test(e.message));
  reject(() => learningRate({ kind: "cosine", lr: 0.1, maxSteps: 0 }, 0), /maxSteps: .* found 0/);
  reject(
    () => learningRate({ kind: "cosine", lr: 0.1, maxSteps: 10, warmupSteps: 11 }, 0),
    /warmupSteps: expected an integer from 0 to maxSteps \(10\), found 11/,
  );
  reject(() => learningRate({ kind: "cosine", lr: 0.1, maxSteps: 10 }, -1), /step: .* found -1/);
  reject(
    () => learningRate({ kind: "linear" as "cosine", lr: 0.1, maxSteps: 10 }, 0),
    /kind: expected "constant" or "cosine", found linear/,
  );
});

/**
 * Checkpoints: the byte format round trips every bit, and a run of the optimize loop killed at
 * any pass — for L-BFGS in the middle of a line search too — resumes from its checkpoint to the
 * uninterrupted result, bit for bit.
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  CheckpointError,
  checkpointReader,
  decodeCheckpoint,
  encodeCheckpoint,
} from "../lib/optim/checkpoint.ts";
import type { OptimizeResult, OptimizerSettings } from "../lib/optim/latent_optimizer.ts";
import {
  numericEvaluator,
  numericJobs,
  numericSettings,
  runLoop,
} from "./fixtures/numeric_evaluator.ts";

function bytesOf(array: Float32Array | Float64Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

Deno.test("checkpoint round trip is bit-exact", () => {
  const n = 4 * 8 * 8;
  const latent = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 1e3);
  latent[0] = -0;
  latent[1] = 1e-45; // smallest subnormal
  latent[2] = Infinity;
  // A NaN with a payload: its exact bits must survive.
  new Uint32Array(latent.buffer, 12, 1)[0] = 0x7fc12345;
  const history = Float64Array.from({ length: 37 }, (_, i) => 1 / (i + 1));
  const numbers = { step: 37, best: 0.1 + 0.2, zero: -0, none: Infinity, nan: NaN };
  const parts = {
    method: "lbfgs",
    numbers,
    arrays: { latent, history, empty: new Float32Array(0) },
  };
  const bytes = encodeCheckpoint(parts);
  const back = decodeCheckpoint(bytes);
  strictEqual(back.method, "lbfgs");
  deepStrictEqual(Object.keys(back.numbers), Object.keys(numbers));
  for (const [k, v] of Object.entries(numbers)) ok(Object.is(back.numbers[k], v), k);
  deepStrictEqual(bytesOf(back.arrays.latent), bytesOf(latent));
  deepStrictEqual(bytesOf(back.arrays.history), bytesOf(history));
  ok(back.arrays.latent instanceof Float32Array && back.arrays.history instanceof Float64Array);
  strictEqual(back.arrays.empty.length, 0);
  deepStrictEqual(encodeCheckpoint(back), bytes);
  strictEqual(bytes.length % 8, 0);
});

Deno.test("truncated, foreign or incomplete checkpoints are refused, naming what is wrong", () => {
  const bytes = encodeCheckpoint({
    method: "adam",
    numbers: { step: 1 },
    arrays: { m: new Float32Array(3) },
  });
  throws(
    () => decodeCheckpoint(bytes.subarray(0, bytes.length - 1), "checkpoint of 00017"),
    (e: Error) =>
      e instanceof CheckpointError &&
      e.message ===
        `checkpoint of 00017: its directory describes ${bytes.length} bytes, found ${
          bytes.length - 1
        }`,
  );
  throws(
    () => decodeCheckpoint(new TextEncoder().encode("not a checkpoint at all, really not at all")),
    (e: Error) => e instanceof CheckpointError && /expected the LFCKPT v2 magic/.test(e.message),
  );
  const read = checkpointReader(decodeCheckpoint(bytes), "checkpoint of 00017");
  throws(
    () => read.float32("m", 4),
    (e: Error) =>
      e instanceof CheckpointError &&
      e.message === 'checkpoint of 00017: expected array "m" (f32 of 4), found f32 of 3',
  );
  throws(() => read.number("passes"), /expected number "passes", found none/);
});

function same(got: OptimizeResult, want: OptimizeResult, what: string): void {
  deepStrictEqual(bytesOf(got.latent), bytesOf(want.latent), `${what}: latent bits`);
  deepStrictEqual(
    [got.steps, got.passes, got.stop, got.lossInitial, got.lossFinal, got.psnrFinal],
    [want.steps, want.passes, want.stop, want.lossInitial, want.lossFinal, want.psnrFinal],
    what,
  );
  deepStrictEqual([got.psnrInitial, got.ssimInitial, got.ssimFinal], [
    want.psnrInitial,
    want.ssimInitial,
    want.ssimFinal,
  ]);
  deepStrictEqual(got.curve, want.curve, `${what}: curves`);
}

/** Kills a batch-1 run after `killAt` evaluations and resumes from its last checkpoint. */
async function killAndResume(settings: OptimizerSettings, killAt: number) {
  const jobs = numericJobs(1, settings);
  const killed = await runLoop(settings, numericEvaluator(settings, jobs), jobs, {
    abortAfter: killAt,
  });
  strictEqual(killed.results.size, 0, `killed at ${killAt}: nothing finished`);
  const checkpoint = killed.checkpoints.get("img0")!;
  const resumedJobs = jobs.map((j) => ({ ...j, checkpoint }));
  const resumed = await runLoop(settings, numericEvaluator(settings, jobs), resumedJobs);
  return { checkpoint, result: resumed.results.get("img0") as OptimizeResult };
}

for (
  const { method, lr, every } of [
    { method: "adam", lr: 0.05, every: 3 },
    { method: "lbfgs", lr: 1, every: 1 },
  ] as const
) {
  Deno.test(`${method}: a run killed at any pass resumes to the same result, bit for bit`, async () => {
    const settings = numericSettings({ method, lr, maxSteps: 1000, maxPasses: 11 });
    const jobs = numericJobs(1, settings);
    const whole = await runLoop(settings, numericEvaluator(settings, jobs), jobs);
    const want = whole.results.get("img0") as OptimizeResult;
    strictEqual(want.passes, 11);
    const inSearch: number[] = [];
    for (let killAt = every; killAt < 11; killAt += every) {
      const { checkpoint, result } = await killAndResume(
        { ...settings, checkpointEvery: every },
        killAt,
      );
      const parts = decodeCheckpoint(checkpoint);
      strictEqual(parts.method, method);
      const passes = parts.arrays.pass_losses.length;
      strictEqual(passes, killAt, "the checkpoint of the last pass before the kill");
      if ((parts.numbers["method.trials"] ?? 0) > 0) inSearch.push(killAt);
      same(result, want, `${method} killed at pass ${killAt}`);
      strictEqual(result.computedPasses, 11 - killAt, "the resumed run computes only the rest");
    }
    if (method === "lbfgs") {
      ok(inSearch.length > 0, "some kill fell in the middle of a line search");
    }
  });
}

Deno.test("a checkpoint of one method is refused by the other, naming both", async () => {
  const settings = numericSettings({ maxPasses: 5, checkpointEvery: 2 });
  const jobs = numericJobs(1, settings);
  const killed = await runLoop(settings, numericEvaluator(settings, jobs), jobs, { abortAfter: 3 });
  const checkpoint = killed.checkpoints.get("img0")!;
  const lbfgs = { ...settings, method: "lbfgs" as const };
  const run = await runLoop(lbfgs, numericEvaluator(lbfgs, jobs), [{ ...jobs[0], checkpoint }]);
  const error = run.results.get("img0");
  ok(error instanceof CheckpointError, `${error}`);
  strictEqual(
    error.message,
    "checkpoint of img0: written by method adam, but the settings ask for lbfgs",
  );
});

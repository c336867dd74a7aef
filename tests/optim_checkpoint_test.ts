import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { adamUpdate, createAdamState } from "../lib/optim/adam.ts";
import {
  CheckpointError,
  decodeCheckpoint,
  encodeCheckpoint,
  type OptimCheckpoint,
} from "../lib/optim/checkpoint.ts";
import { learningRate } from "../lib/optim/schedule.ts";
import { StoppingTracker } from "../lib/optim/stopping.ts";

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
  const m = latent.map((x) => x / 3);
  const v = latent.map((x) => x * x);
  const best = latent.map((x) => x + 1);
  const checkpoint: OptimCheckpoint = {
    latent,
    adam: { m, v, step: 37 },
    bestLatent: best,
    bestLoss: 0.1 + 0.2,
    bestStep: 31,
    history: Float64Array.from({ length: 38 }, (_, i) => 1 / (i + 1)),
    meta: JSON.stringify({ method: "gradient", id: "ünï" }),
  };
  const bytes = encodeCheckpoint(checkpoint);
  const back = decodeCheckpoint(bytes);
  deepStrictEqual(bytesOf(back.latent), bytesOf(latent));
  deepStrictEqual(bytesOf(back.adam.m), bytesOf(m));
  deepStrictEqual(bytesOf(back.adam.v), bytesOf(v));
  deepStrictEqual(bytesOf(back.bestLatent), bytesOf(best));
  deepStrictEqual(bytesOf(back.history), bytesOf(checkpoint.history));
  strictEqual(back.adam.step, 37);
  strictEqual(back.bestStep, 31);
  strictEqual(back.bestLoss, 0.30000000000000004);
  strictEqual(back.meta, checkpoint.meta);
  deepStrictEqual(encodeCheckpoint(back), bytes);
  strictEqual(
    bytes.length,
    40 + 16 * n + 8 * 38 + new TextEncoder().encode(checkpoint.meta).length,
  );
});

Deno.test("a fresh state round trips: no history, best loss Infinity, best step -1", () => {
  const bytes = encodeCheckpoint({
    latent: new Float32Array([1, 2]),
    adam: createAdamState(2),
    bestLatent: new Float32Array([1, 2]),
    bestLoss: Infinity,
    bestStep: -1,
    history: new Float64Array(0),
  });
  const back = decodeCheckpoint(bytes);
  strictEqual(back.bestLoss, Infinity);
  strictEqual(back.bestStep, -1);
  strictEqual(back.history.length, 0);
  strictEqual(back.meta, "");
});

/** Optimizes a quadratic, checkpointing after `stopAt` steps if given and resuming from bytes. */
function optimize(
  stopAt?: number,
): { latent: Float32Array; best: Float32Array; history: number[]; computed: number } {
  const n = 16;
  const target = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
  const options = { patience: 10, tolerance: 1e-6, maxSteps: 60 };
  let latent: Float32Array = new Float32Array(n);
  let state = createAdamState(n);
  let tracker = new StoppingTracker(options);
  let best: Float32Array = latent.slice();
  let computed = 0;
  const grad = new Float32Array(n);
  for (let k = 0;; k++) {
    if (k === stopAt) {
      const bytes = encodeCheckpoint({
        latent,
        adam: state,
        bestLatent: best,
        bestLoss: tracker.bestLoss,
        bestStep: tracker.bestStep,
        history: Float64Array.from(tracker.history),
      });
      // Everything in memory is dropped: only the bytes carry on.
      const back = decodeCheckpoint(bytes);
      latent = back.latent;
      state = back.adam;
      best = back.bestLatent;
      tracker = new StoppingTracker(options, back.history);
      strictEqual(tracker.bestLoss, back.bestLoss);
      strictEqual(tracker.bestStep, back.bestStep);
      computed = 0;
    }
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const d = latent[i] - target[i];
      loss += d * d * (1 + (i % 3));
      grad[i] = 2 * d * (1 + (i % 3));
    }
    computed++;
    const { improved, stop } = tracker.record(loss);
    if (improved) best = latent.slice();
    if (stop) break;
    adamUpdate(
      latent,
      grad,
      state,
      learningRate({ kind: "cosine", lr: 0.02, maxSteps: 60, warmupSteps: 5 }, k),
    );
  }
  return { latent, best, history: tracker.history, computed };
}

Deno.test("resuming from a checkpoint gives the uninterrupted result, bit for bit", () => {
  const whole = optimize();
  strictEqual(whole.computed, 61, "60 updates, then max_steps");
  const resumed = optimize(23);
  deepStrictEqual(bytesOf(resumed.latent), bytesOf(whole.latent));
  deepStrictEqual(bytesOf(resumed.best), bytesOf(whole.best));
  deepStrictEqual(resumed.history, whole.history);
  strictEqual(resumed.computed, whole.computed - 23, "the resumed run computes only the rest");
});

Deno.test("truncated or foreign bytes are rejected with the sizes found", () => {
  const bytes = encodeCheckpoint({
    latent: new Float32Array(3),
    adam: createAdamState(3),
    bestLatent: new Float32Array(3),
    bestLoss: 1,
    bestStep: 0,
    history: new Float64Array([1]),
  });
  throws(
    () => decodeCheckpoint(bytes.subarray(0, bytes.length - 1), "checkpoint of 00017"),
    (e: Error) =>
      e instanceof CheckpointError &&
      e.message ===
        "checkpoint of 00017: a latent of 3, history of 1 and meta of 0 bytes need 96 bytes, found 95",
  );
  throws(
    () => decodeCheckpoint(new TextEncoder().encode("not a checkpoint at all, really not at all")),
    (e: Error) => e instanceof CheckpointError && /expected the LFCKPT v1 magic/.test(e.message),
  );
  throws(
    () =>
      encodeCheckpoint({
        latent: new Float32Array(3),
        adam: createAdamState(2),
        bestLatent: new Float32Array(3),
        bestLoss: 1,
        bestStep: 0,
        history: new Float64Array(0),
      }),
    (e: Error) => e instanceof CheckpointError && /found 3, 2, 2, 3/.test(e.message),
  );
});

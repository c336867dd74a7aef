/**
 * One image's optimization checkpoint as bytes: everything needed to resume mid-way and reach
 * the same final latent, bit for bit, as a run never interrupted.
 *
 * Layout (little-endian), 8-byte aligned sections:
 *
 * | offset | content |
 * |---|---|
 * | 0 | magic `LFCKPT` + version 0x00 0x01 |
 * | 8 | u32 latent length n · u32 history length h · u32 Adam step · i32 best step |
 * | 24 | f64 best loss |
 * | 32 | u32 meta byte length · u32 zero |
 * | 40 | f32 latent[n] · f32 m[n] · f32 v[n] · f32 best latent[n] |
 * | 40 + 16n | f64 loss history[h] |
 * | 40 + 16n + 8h | meta (UTF-8 text, free-form, e.g. JSON) |
 *
 * @module
 */

import type { AdamState } from "./adam.ts";

/** The state of one image's optimization. */
export interface OptimCheckpoint {
  /** The current latent (after `adam.step` updates). */
  latent: Float32Array;
  /** Adam's moments and update count. */
  adam: AdamState;
  /** The latent with the lowest loss seen. */
  bestLatent: Float32Array;
  /** Its loss (Infinity if none was evaluated yet). */
  bestLoss: number;
  /** The update count at which it was seen (-1 if none). */
  bestStep: number;
  /** Every loss evaluated, `history[k]` after `k` updates. */
  history: Float64Array;
  /** Free-form text stored with the state (e.g. JSON of the method and schedule). Default "". */
  meta?: string;
}

/** Raised when bytes are not a checkpoint, or a checkpoint's parts disagree in size. */
export class CheckpointError extends Error {
  override readonly name = "CheckpointError";
}

const MAGIC = [0x4c, 0x46, 0x43, 0x4b, 0x50, 0x54, 0x00, 0x01]; // "LFCKPT" v1
const HEAD = 40;

/**
 * Encodes a checkpoint as bytes.
 *
 * @example
 * ```ts
 * import type { AdamState } from "./adam.ts";
 * import type { StoppingTracker } from "./stopping.ts";
 * declare const latent: Float32Array, bestLatent: Float32Array;
 * declare const state: AdamState;
 * declare const tracker: StoppingTracker;
 * const bytes = encodeCheckpoint({
 *   latent, adam: state, bestLatent, bestLoss: tracker.bestLoss, bestStep: tracker.bestStep,
 *   history: Float64Array.from(tracker.history),
 * });
 * ```
 */
export function encodeCheckpoint(checkpoint: OptimCheckpoint): Uint8Array {
  const { latent, adam, bestLatent, bestLoss, bestStep, history, meta = "" } = checkpoint;
  const n = latent.length;
  if (adam.m.length !== n || adam.v.length !== n || bestLatent.length !== n) {
    throw new CheckpointError(
      `expected latent, m, v and best latent of one length, found ${n}, ${adam.m.length}, ` +
        `${adam.v.length}, ${bestLatent.length}`,
    );
  }
  if (!Number.isInteger(adam.step) || adam.step < 0 || adam.step > 0xffffffff) {
    throw new CheckpointError(`Adam step: expected a u32 integer, found ${adam.step}`);
  }
  if (!Number.isInteger(bestStep) || bestStep < -1 || bestStep > 0x7fffffff) {
    throw new CheckpointError(`best step: expected an integer from -1, found ${bestStep}`);
  }
  const metaBytes = new TextEncoder().encode(meta);
  const h = history.length;
  const out = new Uint8Array(HEAD + 16 * n + 8 * h + metaBytes.length);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, n, true);
  view.setUint32(12, h, true);
  view.setUint32(16, adam.step, true);
  view.setInt32(20, bestStep, true);
  view.setFloat64(24, bestLoss, true);
  view.setUint32(32, metaBytes.length, true);
  let offset = HEAD;
  // Raw byte copies (every platform Deno runs on is little-endian) keep each bit, NaN payloads too.
  for (const part of [latent, adam.m, adam.v, bestLatent, history]) {
    out.set(new Uint8Array(part.buffer, part.byteOffset, part.byteLength), offset);
    offset += part.byteLength;
  }
  out.set(metaBytes, offset);
  return out;
}

/**
 * Decodes checkpoint bytes written by {@link encodeCheckpoint}.
 *
 * @example
 * ```ts
 * const bytes = await Deno.readFile("cache/checkpoints/00017.bin");
 * const { latent, adam, history } = decodeCheckpoint(bytes, "checkpoint of 00017");
 * ```
 */
export function decodeCheckpoint(bytes: Uint8Array, source = "checkpoint"): OptimCheckpoint {
  if (bytes.length < HEAD || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new CheckpointError(
      `${source}: expected the LFCKPT v1 magic bytes, found something else`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(8, true);
  const h = view.getUint32(12, true);
  const step = view.getUint32(16, true);
  const bestStep = view.getInt32(20, true);
  const bestLoss = view.getFloat64(24, true);
  const metaLength = view.getUint32(32, true);
  const expected = HEAD + 16 * n + 8 * h + metaLength;
  if (bytes.length !== expected) {
    throw new CheckpointError(
      `${source}: a latent of ${n}, history of ${h} and meta of ${metaLength} bytes need ` +
        `${expected} bytes, found ${bytes.length}`,
    );
  }
  let offset = HEAD;
  const part = () => {
    const array = new Float32Array(bytes.slice(offset, offset + 4 * n).buffer);
    offset += 4 * n;
    return array;
  };
  const latent = part();
  const m = part();
  const v = part();
  const bestLatent = part();
  const history = new Float64Array(bytes.slice(offset, offset + 8 * h).buffer);
  offset += 8 * h;
  const meta = new TextDecoder().decode(bytes.subarray(offset, offset + metaLength));
  return { latent, adam: { m, v, step }, bestLatent, bestLoss, bestStep, history, meta };
}

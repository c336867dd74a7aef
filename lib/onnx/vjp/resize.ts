/**
 * Gradient rule of Resize and of its predecessor Upsample: the transpose of the interpolation,
 * one axis at a time (a block sum for nearest upsampling by whole factors).
 *
 * @module
 */
import { resizeParams } from "../op_params.ts";
import { resizeTaps } from "../resize_taps.ts";
import { onlyInput0, reduce, reshape } from "./emit.ts";
import type { VjpRule } from "./rule.ts";

const resize: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const xd = b.shape(node.inputs[0]);
  const { out, scales } = resizeParams(b, node, xd);
  const rank = xd.length;
  const changed = xd.map((_, a) => a).filter((a) => out[a] !== xd[a] || scales[a] !== 1);
  const taps = new Map(
    changed.map((a) => [a, resizeTaps(node, b.opset, xd[a], out[a], scales[a])]),
  );
  let g = gy[0]!;
  const isBlock = (a: number) => {
    const k = out[a] / xd[a];
    return Number.isInteger(k) &&
      taps.get(a)!.every((t, o) => t.length === 1 && t[0][0] === Math.floor(o / k));
  };
  if (changed.every(isBlock)) {
    // Nearest upsampling by whole factors: the gradient sums each k×k block.
    const split: number[] = [];
    const axes: number[] = [];
    xd.forEach((d, a) => {
      split.push(d);
      if (changed.includes(a)) {
        axes.push(split.length);
        split.push(out[a] / d);
      }
    });
    if (axes.length === 0) return [g];
    return [reduce(b, "ReduceSum", reshape(b, g, split), axes, 0)];
  }
  for (const a of changed) {
    const m = new Float64Array(out[a] * xd[a]);
    taps.get(a)!.forEach((pairs, o) => pairs.forEach(([i, w]) => (m[o * xd[a] + i] += w)));
    if (a === rank - 1) {
      g = b.op("MatMul", [g, b.constant([out[a], xd[a]], m, "resize_taps")]);
    } else {
      // Move the axis last, contract, move it back.
      const perm = Array.from({ length: rank }, (_, i) => i);
      [perm[a], perm[rank - 1]] = [perm[rank - 1], perm[a]];
      g = b.op("Transpose", [g], { perm });
      g = b.op("MatMul", [g, b.constant([out[a], xd[a]], m, "resize_taps")]);
      g = b.op("Transpose", [g], { perm });
    }
  }
  return [g];
};

/**
 * Rules of Resize and Upsample (one rule: Upsample is Resize with the legacy coordinates).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(RESIZE_RULES.Upsample, RESIZE_RULES.Resize);
 * ```
 */
export const RESIZE_RULES: Readonly<Record<string, VjpRule>> = {
  Resize: resize,
  Upsample: resize,
};

/**
 * Gradient rules of the matrix products MatMul (batched, broadcasting, 1-D operands) and Gemm.
 *
 * @module
 */
import { attrFloat, attrInt } from "../graph.ts";
import { type HostTensor, makeTensor } from "../tensor.ts";
import { reduceTo, reshape } from "./emit.ts";
import type { VjpRule } from "./rule.ts";

function transposeLast2(rank: number): number[] {
  const p = Array.from({ length: rank }, (_, i) => i);
  [p[rank - 2], p[rank - 1]] = [p[rank - 1], p[rank - 2]];
  return p;
}

function hostTranspose2d(t: HostTensor): HostTensor {
  const [r, c] = t.dims;
  const out = makeTensor(t.dtype, [c, r], new Float64Array(r * c));
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out.data[j * r + i] = t.data[i * c + j];
  return out;
}

const matmul: VjpRule = (gy, node, b) => {
  const [x, w] = node.inputs;
  const xd = b.shape(x), wd = b.shape(w);
  const x2 = xd.length === 1 ? [1, xd[0]] : xd;
  const w2 = wd.length === 1 ? [wd[0], 1] : wd;
  let g = gy[0]!;
  const od = b.shape(node.outputs[0]);
  const o2 = [...od];
  if (xd.length === 1) o2.splice(o2.length - (wd.length === 1 ? 0 : 1), 0, 1);
  if (wd.length === 1) o2.push(1);
  if (o2.length !== od.length) g = reshape(b, g, o2);
  const X = xd.length === 1 ? reshape(b, x, x2) : x;
  const W = wd.length === 1 ? reshape(b, w, w2) : w;
  let gx: string | undefined, gw: string | undefined;
  if (b.needs[0]) {
    const wv = b.value(w);
    // A constant 2-D weight is transposed once, on the host.
    const wt = wv && w2.length === 2
      ? b.initializer({ ...hostTranspose2d({ ...wv, dims: w2 }), dtype: wv.dtype }, "matmul_wT")
      : b.op("Transpose", [W], { perm: transposeLast2(w2.length) });
    const gShape = [...o2.slice(0, -1), x2[x2.length - 1]];
    gx = reduceTo(b, b.op("MatMul", [g, wt]), gShape, x2);
    if (xd.length === 1) gx = reshape(b, gx, xd);
  }
  if (b.needs[1]) {
    const xt = b.op("Transpose", [X], { perm: transposeLast2(x2.length) });
    const gShape = [...o2.slice(0, -2), w2[w2.length - 2], o2[o2.length - 1]];
    gw = reduceTo(b, b.op("MatMul", [xt, g]), gShape, w2);
    if (wd.length === 1) gw = reshape(b, gw, wd);
  }
  return [gx, gw];
};

const gemm: VjpRule = (gy, node, b) => {
  const [x, w, c] = node.inputs;
  const alpha = attrFloat(node, "alpha", 1);
  const beta = attrFloat(node, "beta", 1);
  const transA = attrInt(node, "transA", 0);
  const transB = attrInt(node, "transB", 0);
  let g = gy[0]!;
  if (alpha !== 1 && (b.needs[0] || b.needs[1])) g = b.op("Mul", [g, b.scalar(alpha)]);
  let gx: string | undefined, gw: string | undefined, gc: string | undefined;
  if (b.needs[0]) {
    // gA' = gy·B'ᵀ; B'ᵀ is B itself when transB is set.
    gx = transA
      ? b.op("Gemm", [w, g], { transA: transB ? 1 : 0, transB: 1 })
      : b.op("Gemm", [g, w], { transB: transB ? 0 : 1 });
  }
  if (b.needs[1]) {
    gw = transB
      ? b.op("Gemm", [g, x], { transA: 1, transB: transA ? 1 : 0 })
      : b.op("Gemm", [x, g], { transA: transA ? 0 : 1 });
  }
  if (b.needs[2] && c) {
    let gc0 = gy[0]!;
    if (beta !== 1) gc0 = b.op("Mul", [gc0, b.scalar(beta)]);
    gc = reduceTo(b, gc0, b.shape(node.outputs[0]), b.shape(c));
  }
  return [gx, gw, gc];
};

/**
 * Rules of MatMul and Gemm.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(Object.keys(MATMUL_RULES), ["MatMul", "Gemm"]);
 * ```
 */
export const MATMUL_RULES: Readonly<Record<string, VjpRule>> = {
  MatMul: matmul,
  Gemm: gemm,
};

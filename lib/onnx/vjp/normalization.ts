/**
 * Gradient rules of InstanceNormalization, LayerNormalization and BatchNormalization (inference).
 *
 * @module
 */
import { attrFloat, attrInt, type Node } from "../graph.ts";
import { normAxis } from "../op_params.ts";
import type { HostTensor } from "../tensor.ts";
import { onlyInput0, reduce, reshape, unsupported } from "./emit.ts";
import type { OutputGradients, RuleBuilder, VjpRule } from "./rule.ts";

function isConstOf(t: HostTensor | undefined, v: number): boolean {
  return !!t && Array.from(t.data).every((x) => x === v);
}

/**
 * x̂ and 1/σ: x̂ is taken from the forward output when the affine parameters are constants that
 * can be undone, and σ recovered from m = mean(x·x̂) = var/σ, since σ² − mσ − ε = 0; otherwise
 * both are computed again from x.
 */
function normalized(
  node: Node,
  b: RuleBuilder,
  axes: number[],
  eps: number,
  affine: { scale?: string; bias?: string; dims: number[] },
): { xhat: string; inv: string } {
  const x = node.inputs[0];
  const y = node.outputs[0];
  const sv = affine.scale ? b.value(affine.scale) : undefined;
  const bv = affine.bias ? b.value(affine.bias) : undefined;
  const biasIsZero = !affine.bias || isConstOf(bv, 0);
  let xhat = "";
  if ((!affine.scale || isConstOf(sv, 1)) && biasIsZero) {
    xhat = y;
  } else if (sv && Array.from(sv.data).every((v) => v !== 0) && (biasIsZero || bv)) {
    const invScale = b.constant(affine.dims, Array.from(sv.data, (v) => 1 / v));
    const shifted = biasIsZero
      ? y
      : b.op("Sub", [y, b.constant(affine.dims, Array.from(bv!.data))]);
    xhat = b.op("Mul", [shifted, invScale]);
  }
  if (xhat) {
    const m = reduce(b, "ReduceMean", b.op("Mul", [x, xhat]), axes, 1);
    const disc = b.op("Sqrt", [b.op("Add", [b.op("Mul", [m, m]), b.scalar(4 * eps)])]);
    return { xhat, inv: b.op("Div", [b.scalar(2), b.op("Add", [m, disc])]) };
  }
  const mu = reduce(b, "ReduceMean", x, axes, 1);
  const d = b.op("Sub", [x, mu]);
  const v = reduce(b, "ReduceMean", b.op("Mul", [d, d]), axes, 1);
  const inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [v, b.scalar(eps)])])]);
  return { xhat: b.op("Mul", [d, inv]), inv };
}

/** Gradient of y = scale·x̂ + bias with x̂ normalized over `axes`. */
function normGrad(
  gy: OutputGradients,
  node: Node,
  b: RuleBuilder,
  axes: number[],
  eps: number,
  affine: { scale?: string; bias?: string; dims: number[] },
): string {
  const { xhat, inv } = normalized(node, b, axes, eps, affine);
  const sv = affine.scale ? b.value(affine.scale) : undefined;
  let g = gy[0]!;
  if (affine.scale && !isConstOf(sv, 1)) {
    const s = sv
      ? b.constant(affine.dims, Array.from(sv.data))
      : reshape(b, affine.scale, affine.dims);
    g = b.op("Mul", [gy[0]!, s]);
  }
  const mg = reduce(b, "ReduceMean", g, axes, 1);
  const mgx = reduce(b, "ReduceMean", b.op("Mul", [g, xhat]), axes, 1);
  const inner = b.op("Sub", [b.op("Sub", [g, mg]), b.op("Mul", [xhat, mgx])]);
  return b.op("Mul", [inner, inv]);
}

const instanceNorm: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const dims = b.shape(node.inputs[0]);
  const axes = dims.map((_, i) => i).slice(2);
  const paramDims = [dims[1], ...axes.map(() => 1)];
  const eps = attrFloat(node, "epsilon", 1e-5);
  const [, scale, bias] = node.inputs;
  return [normGrad(gy, node, b, axes, eps, { scale, bias, dims: paramDims })];
};

const layerNorm: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const dims = b.shape(node.inputs[0]);
  const axis = normAxis(attrInt(node, "axis", -1), dims.length, node);
  const axes = dims.map((_, i) => i).slice(axis);
  const scale = node.inputs[1];
  const paramDims = scale ? b.shape(scale) : [];
  const eps = attrFloat(node, "epsilon", 1e-5);
  const bias = node.inputs[2] || undefined;
  return [normGrad(gy, node, b, axes, eps, { scale, bias, dims: paramDims })];
};

const batchNorm: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  if (attrInt(node, "training_mode", 0) !== 0 || node.outputs.length > 1) {
    unsupported(node, "only inference mode (training_mode 0, one output) is supported");
  }
  const dims = b.shape(node.inputs[0]);
  const pd = [dims[1], ...dims.slice(2).map(() => 1)];
  const [, scale, , , variance] = node.inputs;
  const eps = attrFloat(node, "epsilon", 1e-5);
  const sv = b.value(scale), vv = b.value(variance);
  let coef: string;
  if (sv && vv) {
    coef = b.constant(pd, Array.from(sv.data, (s, i) => s / Math.sqrt(vv.data[i] + eps)));
  } else {
    const den = b.op("Sqrt", [b.op("Add", [variance, b.scalar(eps)])]);
    coef = reshape(b, b.op("Div", [scale, den]), pd);
  }
  return [b.op("Mul", [gy[0]!, coef])];
};

/**
 * Rules of the normalizations.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(Object.keys(NORMALIZATION_RULES).length, 3);
 * ```
 */
export const NORMALIZATION_RULES: Readonly<Record<string, VjpRule>> = {
  InstanceNormalization: instanceNorm,
  LayerNormalization: layerNorm,
  BatchNormalization: batchNorm,
};

/**
 * Vector-Jacobian product rules: one function per ONNX op type, mapping the gradients of a
 * node's outputs to the gradients of its inputs by emitting standard ONNX ops. The walk that
 * applies them lives in `vjp.ts` and knows nothing about any op.
 *
 * @module
 */
import { UnsupportedOpError } from "./errors.ts";
import { attrFloat, attrInt, attrInts, attrString, describeNode, type Node } from "./graph.ts";
import { resizeTaps } from "./resize_taps.ts";
import type { GraphBuilder } from "./graph_builder.ts";
import {
  axesOf,
  convTransposeGeometry,
  normAxis,
  padsOf,
  resizeParams,
  type ShapeContext,
  sliceAxes,
  splitSizes,
  windowGeometry,
} from "./shape_inference.ts";
import { allocData, DataType, type HostTensor, isFloatType, makeTensor, sizeOf } from "./tensor.ts";

/** What a rule sees: the node, its output gradients, shapes and constants, and a builder. */
export interface RuleContext extends ShapeContext {
  b: GraphBuilder;
  node: Node;
  /** Gradient value of each output (undefined when no gradient reaches it). */
  gy: (string | undefined)[];
  /** Which inputs need a gradient. */
  needs: boolean[];
  /** The forward node producing a value (undefined for inputs and constants). */
  producer(name: string): Node | undefined;
  /** The forward nodes reading a value. */
  consumers(name: string): Node[];
}

/**
 * A VJP rule: returns one gradient value name per input; undefined where not needed, and null
 * for an input whose whole gradient the rule has already passed further up (see SiLU in Mul).
 */
export type VjpRule = (ctx: RuleContext) => (string | undefined | null)[];

// ---------------------------------------------------------------- emit helpers

function unsupported(ctx: RuleContext, what: string): never {
  throw new UnsupportedOpError(`${describeNode(ctx.node)}: ${what}`);
}

function onlyInput0(ctx: RuleContext): void {
  ctx.needs.forEach((need, i) => {
    if (need && i > 0) {
      unsupported(
        ctx,
        `gradient with respect to input ${i} ("${ctx.node.inputs[i]}") is not supported`,
      );
    }
  });
}

function fconst(ctx: RuleContext, v: number): string {
  return ctx.b.scalar(v, floatType(ctx));
}

function floatType(ctx: RuleContext): number {
  const t = ctx.dtype(ctx.node.outputs[0]);
  return isFloatType(t) ? t : DataType.FLOAT;
}

function op(ctx: RuleContext, type: string, inputs: string[], attrs = {}): string {
  return ctx.b.node(type, inputs, attrs, { name: `grad_${type}` });
}

function reshape(ctx: RuleContext, x: string, dims: number[]): string {
  return op(ctx, "Reshape", [x, ctx.b.int64s(dims)]);
}

function reduce(
  ctx: RuleContext,
  type: "ReduceSum" | "ReduceMean",
  x: string,
  axes: number[],
  keepdims: number,
): string {
  const asInput = type === "ReduceSum" ? ctx.opset >= 13 : ctx.opset >= 18;
  return asInput
    ? op(ctx, type, [x, ctx.b.int64s(axes)], { keepdims })
    : op(ctx, type, [x], { axes, keepdims });
}

/** Sums a broadcast gradient of shape `from` down to an input of shape `to`. */
function reduceTo(ctx: RuleContext, g: string, from: number[], to: number[]): string {
  const lead = from.length - to.length;
  const axes: number[] = [];
  for (let i = 0; i < from.length; i++) {
    const t = i < lead ? 1 : to[i - lead];
    if (i < lead || (t === 1 && from[i] !== 1)) axes.push(i);
  }
  let out = g;
  if (axes.length > 0) out = reduce(ctx, "ReduceSum", out, axes, 1);
  if (lead > 0) out = reshape(ctx, out, to);
  return out;
}

function outShape(ctx: RuleContext, i = 0): number[] {
  return ctx.shape(ctx.node.outputs[i]);
}

function inShape(ctx: RuleContext, i = 0): number[] {
  return ctx.shape(ctx.node.inputs[i]);
}

function isConstOf(t: HostTensor | undefined, v: number): boolean {
  return !!t && Array.from(t.data).every((x) => x === v);
}

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

/** An elementwise rule `gx = gy * f'(x, y)` for single-input ops. */
function unaryRule(dfdx: (ctx: RuleContext, x: string, y: string, gy: string) => string): VjpRule {
  return (ctx) => {
    onlyInput0(ctx);
    const gy = ctx.gy[0]!;
    return [dfdx(ctx, ctx.node.inputs[0], ctx.node.outputs[0], gy)];
  };
}

// ---------------------------------------------------------------- elementwise

const add: VjpRule = (ctx) => {
  const gy = ctx.gy[0]!;
  const out = outShape(ctx);
  return ctx.node.inputs.map((
    x,
    i,
  ) => (ctx.needs[i] ? reduceTo(ctx, gy, out, ctx.shape(x)) : undefined));
};

const sub: VjpRule = (ctx) => {
  const gy = ctx.gy[0]!;
  const out = outShape(ctx);
  const [a, b] = ctx.node.inputs;
  return [
    ctx.needs[0] ? reduceTo(ctx, gy, out, ctx.shape(a)) : undefined,
    ctx.needs[1] ? reduceTo(ctx, op(ctx, "Neg", [gy]), out, ctx.shape(b)) : undefined,
  ];
};

/**
 * SiLU written as x·Sigmoid(x): with y = x·s, dy/dx = s + x·s(1−s) = y + s(1−y). Passing the
 * gradient straight to x saves the separate Sigmoid rule and the accumulation.
 */
function siluGrad(ctx: RuleContext): (string | undefined | null)[] | undefined {
  const [a, b] = ctx.node.inputs;
  for (const [xi, si] of [[0, 1], [1, 0]]) {
    const x = ctx.node.inputs[xi], s = ctx.node.inputs[si];
    const sig = ctx.producer(s);
    if (
      a !== b && sig?.opType === "Sigmoid" && sig.inputs[0] === x &&
      ctx.consumers(s).length === 1 && ctx.needs[xi]
    ) {
      const y = ctx.node.outputs[0];
      const d = op(ctx, "Add", [y, op(ctx, "Mul", [s, op(ctx, "Sub", [fconst(ctx, 1), y])])]);
      const out: (string | undefined | null)[] = [undefined, undefined];
      out[xi] = op(ctx, "Mul", [ctx.gy[0]!, d]);
      out[si] = null;
      return out;
    }
  }
  return undefined;
}

const mul: VjpRule = (ctx) => {
  const silu = siluGrad(ctx);
  if (silu) return silu;
  const gy = ctx.gy[0]!;
  const out = outShape(ctx);
  const [a, b] = ctx.node.inputs;
  return [
    ctx.needs[0] ? reduceTo(ctx, op(ctx, "Mul", [gy, b]), out, ctx.shape(a)) : undefined,
    ctx.needs[1] ? reduceTo(ctx, op(ctx, "Mul", [gy, a]), out, ctx.shape(b)) : undefined,
  ];
};

const div: VjpRule = (ctx) => {
  const gy = ctx.gy[0]!;
  const out = outShape(ctx);
  const [a, b] = ctx.node.inputs;
  let ga: string | undefined;
  const bv = ctx.value(b);
  if (ctx.needs[0]) {
    // Division by a constant becomes a multiplication by its reciprocal.
    const g = bv && sizeOf(bv.dims) === 1
      ? op(ctx, "Mul", [gy, fconst(ctx, 1 / bv.data[0])])
      : op(ctx, "Div", [gy, b]);
    ga = reduceTo(ctx, g, out, ctx.shape(a));
  }
  let gb: string | undefined;
  if (ctx.needs[1]) {
    // d(a/b)/db = -(a/b)/b = -y/b, reusing the forward output.
    const g = op(ctx, "Neg", [op(ctx, "Div", [op(ctx, "Mul", [gy, ctx.node.outputs[0]]), b])]);
    gb = reduceTo(ctx, g, out, ctx.shape(b));
  }
  return [ga, gb];
};

const sum: VjpRule = add;

const where: VjpRule = (ctx) => {
  const gy = ctx.gy[0]!;
  const out = outShape(ctx);
  const [c, a, b] = ctx.node.inputs;
  const zero = fconst(ctx, 0);
  return [
    undefined,
    ctx.needs[1] ? reduceTo(ctx, op(ctx, "Where", [c, gy, zero]), out, ctx.shape(a)) : undefined,
    ctx.needs[2] ? reduceTo(ctx, op(ctx, "Where", [c, zero, gy]), out, ctx.shape(b)) : undefined,
  ];
};

const sigmoid = unaryRule((ctx, _x, y, gy) =>
  op(ctx, "Mul", [gy, op(ctx, "Mul", [y, op(ctx, "Sub", [fconst(ctx, 1), y])])])
);
const tanh = unaryRule((ctx, _x, y, gy) =>
  op(ctx, "Mul", [gy, op(ctx, "Sub", [fconst(ctx, 1), op(ctx, "Mul", [y, y])])])
);
const relu = unaryRule((ctx, _x, y, gy) =>
  op(ctx, "Where", [op(ctx, "Greater", [y, fconst(ctx, 0)]), gy, fconst(ctx, 0)])
);
const leakyRelu = unaryRule((ctx, x, _y, gy) => {
  const alpha = attrFloat(ctx.node, "alpha", 0.01);
  return op(ctx, "Where", [
    op(ctx, "Greater", [x, fconst(ctx, 0)]),
    gy,
    op(ctx, "Mul", [gy, fconst(ctx, alpha)]),
  ]);
});
const erf = unaryRule((ctx, x, _y, gy) => {
  const e = op(ctx, "Exp", [op(ctx, "Neg", [op(ctx, "Mul", [x, x])])]);
  return op(ctx, "Mul", [gy, op(ctx, "Mul", [e, fconst(ctx, 2 / Math.sqrt(Math.PI))])]);
});
const exp = unaryRule((ctx, _x, y, gy) => op(ctx, "Mul", [gy, y]));
const log = unaryRule((ctx, x, _y, gy) => op(ctx, "Div", [gy, x]));
const sqrt = unaryRule((ctx, _x, y, gy) =>
  op(ctx, "Div", [op(ctx, "Mul", [gy, fconst(ctx, 0.5)]), y])
);
const reciprocal = unaryRule((ctx, _x, y, gy) =>
  op(ctx, "Neg", [op(ctx, "Mul", [gy, op(ctx, "Mul", [y, y])])])
);
const neg = unaryRule((ctx, _x, _y, gy) => op(ctx, "Neg", [gy]));
const abs = unaryRule((ctx, x, _y, gy) => op(ctx, "Mul", [gy, op(ctx, "Sign", [x])]));
const identity = unaryRule((_ctx, _x, _y, gy) => gy);

const pow: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const [x, e] = ctx.node.inputs;
  const ev = ctx.value(e);
  if (!ev) unsupported(ctx, `exponent "${e}" must be a constant`);
  const gy = ctx.gy[0]!;
  const out = outShape(ctx);
  let g: string;
  if (sizeOf(ev.dims) === 1) {
    const p = ev.data[0];
    if (p === 1) g = gy;
    else if (p === 2) g = op(ctx, "Mul", [gy, op(ctx, "Mul", [x, fconst(ctx, 2)])]);
    else if (p === 0.5) {
      g = op(ctx, "Div", [op(ctx, "Mul", [gy, fconst(ctx, 0.5)]), ctx.node.outputs[0]]);
    } else {
      const xp = op(ctx, "Pow", [x, fconst(ctx, p - 1)]);
      g = op(ctx, "Mul", [gy, op(ctx, "Mul", [xp, fconst(ctx, p)])]);
    }
  } else {
    const ft = floatType(ctx);
    const pm1 = ctx.b.constant(ft, ev.dims, Array.from(ev.data, (v) => v - 1));
    const pc = ctx.b.constant(ft, ev.dims, Array.from(ev.data));
    g = op(ctx, "Mul", [gy, op(ctx, "Mul", [op(ctx, "Pow", [x, pm1]), pc])]);
  }
  return [reduceTo(ctx, g, out, inShape(ctx, 0)), undefined];
};

const clip: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const x = ctx.node.inputs[0];
  let lo: string | undefined, hi: string | undefined;
  if (ctx.opset < 11) {
    if (ctx.node.attrs.min) lo = fconst(ctx, attrFloat(ctx.node, "min", -Infinity));
    if (ctx.node.attrs.max) hi = fconst(ctx, attrFloat(ctx.node, "max", Infinity));
  } else {
    if (ctx.node.inputs[1]) lo = ctx.node.inputs[1];
    if (ctx.node.inputs[2]) hi = ctx.node.inputs[2];
  }
  let mask: string | undefined;
  if (lo) mask = op(ctx, "GreaterOrEqual", [x, lo]);
  if (hi) {
    const m = op(ctx, "LessOrEqual", [x, hi]);
    mask = mask ? op(ctx, "And", [mask, m]) : m;
  }
  const gy = ctx.gy[0]!;
  return [mask ? op(ctx, "Where", [mask, gy, fconst(ctx, 0)]) : gy];
};

const cast: VjpRule = (ctx) => {
  const from = ctx.dtype(ctx.node.inputs[0]);
  const gy = ctx.gy[0]!;
  return [from === ctx.dtype(ctx.node.outputs[0]) ? gy : op(ctx, "Cast", [gy], { to: from })];
};

const dropout: VjpRule = (ctx) => {
  onlyInput0(ctx);
  return [ctx.gy[0]!];
};

// ---------------------------------------------------------------- normalization

/**
 * Gradient of y = scale·x̂ + bias with x̂ normalized over `axes`. x̂ is taken from the forward
 * output when the affine parameters are constants that can be undone; the standard deviation
 * σ is recovered from m = mean(x·x̂) = var/σ, since σ² − mσ − ε = 0.
 */
function normGrad(
  ctx: RuleContext,
  axes: number[],
  eps: number,
  scale: string | undefined,
  bias: string | undefined,
  paramDims: number[],
): string {
  const x = ctx.node.inputs[0];
  const y = ctx.node.outputs[0];
  const gy = ctx.gy[0]!;
  const ft = floatType(ctx);
  const sv = scale ? ctx.value(scale) : undefined;
  const bv = bias ? ctx.value(bias) : undefined;
  const scaleIsOne = !scale || isConstOf(sv, 1);
  const biasIsZero = !bias || isConstOf(bv, 0);
  let xhat: string;
  let inv: string;
  if (scaleIsOne && biasIsZero) {
    xhat = y;
  } else if (sv && Array.from(sv.data).every((v) => v !== 0) && (biasIsZero || bv)) {
    const invScale = ctx.b.constant(ft, paramDims, Array.from(sv.data, (v) => 1 / v));
    const shifted = biasIsZero
      ? y
      : op(ctx, "Sub", [y, ctx.b.constant(ft, paramDims, Array.from(bv!.data))]);
    xhat = op(ctx, "Mul", [shifted, invScale]);
  } else {
    xhat = "";
  }
  if (xhat) {
    const m = reduce(ctx, "ReduceMean", op(ctx, "Mul", [x, xhat]), axes, 1);
    const disc = op(ctx, "Sqrt", [op(ctx, "Add", [op(ctx, "Mul", [m, m]), fconst(ctx, 4 * eps)])]);
    inv = op(ctx, "Div", [fconst(ctx, 2), op(ctx, "Add", [m, disc])]);
  } else {
    const mu = reduce(ctx, "ReduceMean", x, axes, 1);
    const d = op(ctx, "Sub", [x, mu]);
    const v = reduce(ctx, "ReduceMean", op(ctx, "Mul", [d, d]), axes, 1);
    inv = op(ctx, "Reciprocal", [op(ctx, "Sqrt", [op(ctx, "Add", [v, fconst(ctx, eps)])])]);
    xhat = op(ctx, "Mul", [d, inv]);
  }
  let g = gy;
  if (!scaleIsOne) {
    const s = sv
      ? ctx.b.constant(ft, paramDims, Array.from(sv.data))
      : reshape(ctx, scale!, paramDims);
    g = op(ctx, "Mul", [gy, s]);
  }
  const mg = reduce(ctx, "ReduceMean", g, axes, 1);
  const mgx = reduce(ctx, "ReduceMean", op(ctx, "Mul", [g, xhat]), axes, 1);
  const inner = op(ctx, "Sub", [op(ctx, "Sub", [g, mg]), op(ctx, "Mul", [xhat, mgx])]);
  return op(ctx, "Mul", [inner, inv]);
}

const instanceNorm: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const dims = inShape(ctx);
  const axes = dims.map((_, i) => i).slice(2);
  const paramDims = [dims[1], ...axes.map(() => 1)];
  const eps = attrFloat(ctx.node, "epsilon", 1e-5);
  return [normGrad(ctx, axes, eps, ctx.node.inputs[1], ctx.node.inputs[2], paramDims)];
};

const layerNorm: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const dims = inShape(ctx);
  const axis = normAxis(attrInt(ctx.node, "axis", -1), dims.length, ctx.node);
  const axes = dims.map((_, i) => i).slice(axis);
  const scale = ctx.node.inputs[1];
  const paramDims = scale ? ctx.shape(scale) : [];
  const eps = attrFloat(ctx.node, "epsilon", 1e-5);
  return [normGrad(ctx, axes, eps, scale, ctx.node.inputs[2] || undefined, paramDims)];
};

const batchNorm: VjpRule = (ctx) => {
  onlyInput0(ctx);
  if (attrInt(ctx.node, "training_mode", 0) !== 0 || ctx.node.outputs.length > 1) {
    unsupported(ctx, "only inference mode (training_mode 0, one output) is supported");
  }
  const dims = inShape(ctx);
  const pd = [dims[1], ...dims.slice(2).map(() => 1)];
  const [, scale, , , variance] = ctx.node.inputs;
  const eps = attrFloat(ctx.node, "epsilon", 1e-5);
  const sv = ctx.value(scale), vv = ctx.value(variance);
  let coef: string;
  if (sv && vv) {
    coef = ctx.b.constant(
      floatType(ctx),
      pd,
      Array.from(sv.data, (s, i) => s / Math.sqrt(vv.data[i] + eps)),
    );
  } else {
    const den = op(ctx, "Sqrt", [op(ctx, "Add", [variance, fconst(ctx, eps)])]);
    coef = reshape(ctx, op(ctx, "Div", [scale, den]), pd);
  }
  return [op(ctx, "Mul", [ctx.gy[0]!, coef])];
};

const softmax: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const dims = inShape(ctx);
  const axis = normAxis(attrInt(ctx.node, "axis", ctx.opset >= 13 ? -1 : 1), dims.length, ctx.node);
  const axes = ctx.opset >= 13 ? [axis] : dims.map((_, i) => i).slice(axis);
  const y = ctx.node.outputs[0];
  const gy = ctx.gy[0]!;
  const s = reduce(ctx, "ReduceSum", op(ctx, "Mul", [gy, y]), axes, 1);
  return [op(ctx, "Mul", [y, op(ctx, "Sub", [gy, s])])];
};

const logSoftmax: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const dims = inShape(ctx);
  const axis = normAxis(attrInt(ctx.node, "axis", ctx.opset >= 13 ? -1 : 1), dims.length, ctx.node);
  const axes = ctx.opset >= 13 ? [axis] : dims.map((_, i) => i).slice(axis);
  const gy = ctx.gy[0]!;
  const s = reduce(ctx, "ReduceSum", gy, axes, 1);
  return [op(ctx, "Sub", [gy, op(ctx, "Mul", [op(ctx, "Exp", [ctx.node.outputs[0]]), s])])];
};

// ---------------------------------------------------------------- shape ops

const reshapeBack: VjpRule = (ctx) => {
  onlyInput0(ctx);
  return [reshape(ctx, ctx.gy[0]!, inShape(ctx))];
};

const transpose: VjpRule = (ctx) => {
  const dims = inShape(ctx);
  const perm = attrInts(ctx.node, "perm", undefined) ?? dims.map((_, i) => dims.length - 1 - i);
  const inv = Array(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return [op(ctx, "Transpose", [ctx.gy[0]!], { perm: inv })];
};

function slice(ctx: RuleContext, x: string, axis: number, start: number, end: number): string {
  return op(ctx, "Slice", [x, ctx.b.int64s([start]), ctx.b.int64s([end]), ctx.b.int64s([axis])]);
}

function pad(ctx: RuleContext, x: string, pads: number[]): string {
  return op(ctx, "Pad", [x, ctx.b.int64s(pads)], { mode: "constant" });
}

const concat: VjpRule = (ctx) => {
  const rank = outShape(ctx).length;
  const axis = normAxis(attrInt(ctx.node, "axis", 0), rank, ctx.node);
  let offset = 0;
  return ctx.node.inputs.map((x, i) => {
    const d = ctx.shape(x)[axis];
    const g = ctx.needs[i] ? slice(ctx, ctx.gy[0]!, axis, offset, offset + d) : undefined;
    offset += d;
    return g;
  });
};

function zeros(ctx: RuleContext, dims: number[]): string {
  return op(ctx, "Expand", [fconst(ctx, 0), ctx.b.int64s(dims)]);
}

const split: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const dims = inShape(ctx);
  const axis = normAxis(attrInt(ctx.node, "axis", 0), dims.length, ctx.node);
  const sizes = splitSizes(ctx, ctx.node, dims);
  const parts = sizes.map((s, i) => {
    const d = [...dims];
    d[axis] = s;
    return ctx.gy[i] ?? zeros(ctx, d);
  });
  return [op(ctx, "Concat", parts, { axis })];
};

const sliceRule: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const dims = inShape(ctx);
  const rank = dims.length;
  let g = ctx.gy[0]!;
  const cur = [...outShape(ctx)];
  for (const s of sliceAxes(ctx, ctx.node, dims)) {
    const a = s.axis;
    if (s.count === 0) return [zeros(ctx, dims)];
    let first = s.start;
    let step = s.step;
    if (step < 0) {
      // Reverse along the axis so that positions increase.
      g = op(ctx, "Slice", [
        g,
        ctx.b.int64s([-1]),
        ctx.b.int64s([-(2 ** 62)]),
        ctx.b.int64s([a]),
        ctx.b.int64s([-1]),
      ]);
      first = s.start + (s.count - 1) * step;
      step = -step;
    }
    if (step > 1) {
      // Interleave step−1 zeros after every element, then drop the trailing ones.
      const withUnit = [...cur.slice(0, a + 1), 1, ...cur.slice(a + 1)];
      g = reshape(ctx, g, withUnit);
      const pads = Array(2 * (rank + 1)).fill(0);
      pads[a + 1 + rank + 1] = step - 1;
      g = pad(ctx, g, pads);
      const merged = [...cur];
      merged[a] = cur[a] * step;
      g = reshape(ctx, g, merged);
      g = slice(ctx, g, a, 0, (s.count - 1) * step + 1);
      cur[a] = (s.count - 1) * step + 1;
    }
    const pads = Array(2 * rank).fill(0);
    pads[a] = first;
    pads[a + rank] = dims[a] - first - cur[a];
    if (pads[a] !== 0 || pads[a + rank] !== 0) g = pad(ctx, g, pads);
    cur[a] = dims[a];
  }
  return [g];
};

const padRule: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const mode = attrString(ctx.node, "mode", "constant");
  if (mode !== "constant") unsupported(ctx, `pad mode "${mode}" (only "constant" has a rule)`);
  const dims = inShape(ctx);
  const rank = dims.length;
  const pads = padsOf(ctx, ctx.node, rank);
  let g = ctx.gy[0]!;
  const out = outShape(ctx);
  const starts: number[] = [], ends: number[] = [], axes: number[] = [];
  const grow = Array(2 * rank).fill(0);
  for (let i = 0; i < rank; i++) {
    const b = pads[i], e = pads[i + rank];
    if (b > 0 || e > 0) {
      axes.push(i);
      starts.push(Math.max(b, 0));
      ends.push(out[i] - Math.max(e, 0));
    }
    grow[i] = Math.max(-b, 0);
    grow[i + rank] = Math.max(-e, 0);
  }
  if (axes.length > 0) {
    g = op(ctx, "Slice", [g, ctx.b.int64s(starts), ctx.b.int64s(ends), ctx.b.int64s(axes)]);
  }
  if (grow.some((v) => v > 0)) g = pad(ctx, g, grow);
  return [g];
};

const gather: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const [x, indices] = ctx.node.inputs;
  const iv = ctx.value(indices);
  if (!iv) unsupported(ctx, `indices "${indices}" must be constant`);
  const dims = ctx.shape(x);
  const axis = normAxis(attrInt(ctx.node, "axis", 0), dims.length, ctx.node);
  const d = dims[axis];
  const k = sizeOf(iv.dims);
  const pre = sizeOf(dims.slice(0, axis));
  const post = sizeOf(dims.slice(axis + 1));
  // Scatter-add as a product with a one-hot matrix: repeated indices accumulate.
  const m = new Float64Array(d * k);
  for (let j = 0; j < k; j++) {
    const idx = iv.data[j] < 0 ? iv.data[j] + d : iv.data[j];
    m[idx * k + j] += 1;
  }
  const onehot = ctx.b.constant(floatType(ctx), [d, k], m, "gather_onehot");
  const g3 = reshape(ctx, ctx.gy[0]!, [pre, k, post]);
  return [reshape(ctx, op(ctx, "MatMul", [onehot, g3]), dims), undefined];
};

const expand: VjpRule = (ctx) => {
  onlyInput0(ctx);
  return [reduceTo(ctx, ctx.gy[0]!, outShape(ctx), inShape(ctx)), undefined];
};

const tile: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const dims = inShape(ctx);
  const reps = outShape(ctx).map((o, i) => o / dims[i]);
  const split = dims.flatMap((d, i) => [reps[i], d]);
  const g = reshape(ctx, ctx.gy[0]!, split);
  const axes = dims.map((_, i) => 2 * i);
  return [reduce(ctx, "ReduceSum", g, axes, 0), undefined];
};

const reduceRule = (mean: boolean): VjpRule => (ctx) => {
  onlyInput0(ctx);
  const dims = inShape(ctx);
  const axesAsInput = ctx.node.opType === "ReduceSum" ? 13 : 18;
  let axes = axesOf(ctx, ctx.node, ctx.opset >= axesAsInput ? 1 : 99);
  if (!axes || axes.length === 0) {
    if (attrInt(ctx.node, "noop_with_empty_axes", 0)) return [ctx.gy[0]!];
    axes = dims.map((_, i) => i);
  }
  const set = new Set(axes.map((a) => normAxis(a, dims.length, ctx.node)));
  const kept = dims.map((d, i) => (set.has(i) ? 1 : d));
  let g = ctx.gy[0]!;
  if (attrInt(ctx.node, "keepdims", 1) === 0) g = reshape(ctx, g, kept);
  if (mean) {
    const count = dims.reduce((a, d, i) => (set.has(i) ? a * d : a), 1);
    g = op(ctx, "Mul", [g, fconst(ctx, 1 / count)]);
  }
  return [op(ctx, "Expand", [g, ctx.b.int64s(dims)])];
};

const globalAveragePool: VjpRule = (ctx) => {
  const dims = inShape(ctx);
  const count = sizeOf(dims.slice(2));
  const g = op(ctx, "Mul", [ctx.gy[0]!, fconst(ctx, 1 / count)]);
  return [op(ctx, "Expand", [g, ctx.b.int64s(dims)])];
};

// ---------------------------------------------------------------- linear algebra

const matmul: VjpRule = (ctx) => {
  const [a, b] = ctx.node.inputs;
  const ad = ctx.shape(a), bd = ctx.shape(b);
  const a2 = ad.length === 1 ? [1, ad[0]] : ad;
  const b2 = bd.length === 1 ? [bd[0], 1] : bd;
  let gy = ctx.gy[0]!;
  const od = outShape(ctx);
  const o2 = [...od];
  if (ad.length === 1) o2.splice(o2.length - (bd.length === 1 ? 0 : 1), 0, 1);
  if (bd.length === 1) o2.push(1);
  if (o2.length !== od.length) gy = reshape(ctx, gy, o2);
  const A = ad.length === 1 ? reshape(ctx, a, a2) : a;
  const B = bd.length === 1 ? reshape(ctx, b, b2) : b;
  let ga: string | undefined, gb: string | undefined;
  if (ctx.needs[0]) {
    const bv = ctx.value(b);
    // A constant 2-D weight is transposed once, on the host.
    const bt = bv && b2.length === 2
      ? ctx.b.initializer({ ...hostTranspose2d({ ...bv, dims: b2 }), dtype: bv.dtype }, "matmul_wT")
      : op(ctx, "Transpose", [B], { perm: transposeLast2(b2.length) });
    const g = op(ctx, "MatMul", [gy, bt]);
    const gShape = [...o2.slice(0, -1), a2[a2.length - 1]];
    ga = reduceTo(ctx, g, gShape, a2);
    if (ad.length === 1) ga = reshape(ctx, ga, ad);
  }
  if (ctx.needs[1]) {
    const at = op(ctx, "Transpose", [A], { perm: transposeLast2(a2.length) });
    const g = op(ctx, "MatMul", [at, gy]);
    const gShape = [...o2.slice(0, -2), b2[b2.length - 2], o2[o2.length - 1]];
    gb = reduceTo(ctx, g, gShape, b2);
    if (bd.length === 1) gb = reshape(ctx, gb, bd);
  }
  return [ga, gb];
};

const gemm: VjpRule = (ctx) => {
  const [a, b, c] = ctx.node.inputs;
  const alpha = attrFloat(ctx.node, "alpha", 1);
  const beta = attrFloat(ctx.node, "beta", 1);
  const transA = attrInt(ctx.node, "transA", 0);
  const transB = attrInt(ctx.node, "transB", 0);
  let gy = ctx.gy[0]!;
  if (alpha !== 1 && (ctx.needs[0] || ctx.needs[1])) gy = op(ctx, "Mul", [gy, fconst(ctx, alpha)]);
  let ga: string | undefined, gb: string | undefined, gc: string | undefined;
  if (ctx.needs[0]) {
    // gA' = gy·B'ᵀ; B'ᵀ is B itself when transB is set.
    ga = transA
      ? op(ctx, "Gemm", [b, gy], { transA: transB ? 1 : 0, transB: 1 })
      : op(ctx, "Gemm", [gy, b], { transB: transB ? 0 : 1 });
  }
  if (ctx.needs[1]) {
    gb = transB
      ? op(ctx, "Gemm", [gy, a], { transA: 1, transB: transA ? 1 : 0 })
      : op(ctx, "Gemm", [a, gy], { transA: transA ? 0 : 1 });
  }
  if (ctx.needs[2] && c) {
    let g = ctx.gy[0]!;
    if (beta !== 1) g = op(ctx, "Mul", [g, fconst(ctx, beta)]);
    gc = reduceTo(ctx, g, outShape(ctx), ctx.shape(c));
  }
  return [ga, gb, gc];
};

// ---------------------------------------------------------------- convolution and pooling

const flippedWeights = new WeakMap<HostTensor, Map<number, HostTensor>>();

/** Conv weight [M, C/g, k…] rearranged for the input gradient as a stride-1 Conv: [C, M/g, k…] flipped. */
function flipWeights(w: HostTensor, group: number): HostTensor {
  let byGroup = flippedWeights.get(w);
  if (!byGroup) flippedWeights.set(w, byGroup = new Map());
  const cached = byGroup.get(group);
  if (cached) return cached;
  const [m, cg, ...k] = w.dims;
  const ks = sizeOf(k);
  const mg = m / group;
  const out: HostTensor = {
    dtype: w.dtype,
    dims: [cg * group, mg, ...k],
    data: allocData(w.dtype, w.data.length),
  };
  for (let g = 0; g < group; g++) {
    for (let mo = 0; mo < mg; mo++) {
      for (let c = 0; c < cg; c++) {
        const src = ((g * mg + mo) * cg + c) * ks;
        const dst = ((g * cg + c) * mg + mo) * ks;
        for (let i = 0; i < ks; i++) out.data[dst + i] = w.data[src + ks - 1 - i];
      }
    }
  }
  byGroup.set(group, out);
  return out;
}

const conv: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const [x, w] = ctx.node.inputs;
  const xd = ctx.shape(x), wd = ctx.shape(w);
  const kernel = attrInts(ctx.node, "kernel_shape", undefined) ?? wd.slice(2);
  const geo = windowGeometry(ctx.node, xd.slice(2), kernel);
  const group = attrInt(ctx.node, "group", 1);
  const r = kernel.length;
  const keff = kernel.map((k, i) => (k - 1) * geo.dilations[i] + 1);
  const wv = ctx.value(w);
  const flipPads = [
    ...keff.map((k, i) => k - 1 - geo.pads[i]),
    ...keff.map((k, i) => k - 1 - geo.pads[i + r]),
  ];
  if (wv && geo.strides.every((s) => s === 1) && flipPads.every((p) => p >= 0)) {
    // A stride-1 transposed convolution is a plain convolution with flipped, transposed
    // weights; runtimes optimize Conv far better than ConvTranspose.
    const wf = ctx.b.initializer(flipWeights(wv, group), "conv_wflip");
    return [op(ctx, "Conv", [ctx.gy[0]!, wf], {
      kernel_shape: kernel,
      pads: flipPads,
      dilations: geo.dilations,
      group,
    })];
  }
  const outPad = xd.slice(2).map((d, i) =>
    d - (geo.strides[i] * (geo.out[i] - 1) + keff[i] - geo.pads[i] - geo.pads[i + r])
  );
  return [op(ctx, "ConvTranspose", [ctx.gy[0]!, w], {
    kernel_shape: kernel,
    strides: geo.strides,
    pads: geo.pads,
    dilations: geo.dilations,
    group,
    output_padding: outPad.some((p) => p !== 0) ? outPad : undefined,
  })];
};

const convTranspose: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const [x, w] = ctx.node.inputs;
  const xd = ctx.shape(x), wd = ctx.shape(w);
  const kernel = attrInts(ctx.node, "kernel_shape", undefined) ?? wd.slice(2);
  const geo = convTransposeGeometry(ctx.node, xd.slice(2), kernel);
  return [op(ctx, "Conv", [ctx.gy[0]!, w], {
    kernel_shape: kernel,
    strides: geo.strides,
    pads: geo.pads,
    dilations: geo.dilations,
    group: attrInt(ctx.node, "group", 1),
  })];
};

const maxPool: VjpRule = (ctx) => {
  const node = ctx.node;
  const xd = inShape(ctx);
  const kernel = attrInts(node, "kernel_shape", [])!;
  const geo = windowGeometry(node, xd.slice(2), kernel);
  if (attrInt(node, "storage_order", 0) !== 0) unsupported(ctx, "storage_order 1");
  // The forward pass records where each maximum came from; reuse it instead of searching again.
  if (!node.outputs[1]) node.outputs[1] = ctx.b.fresh(`${node.name}_indices`);
  const overlap = kernel.some((k, i) => (k - 1) * geo.dilations[i] + 1 > geo.strides[i]);
  if (overlap && ctx.opset < 16) {
    unsupported(
      ctx,
      `overlapping windows need ScatterElements reduction (opset ≥ 16), graph has ${ctx.opset}`,
    );
  }
  const total = sizeOf(xd);
  const zero = op(ctx, "Expand", [fconst(ctx, 0), ctx.b.int64s([total])]);
  const idx = reshape(ctx, node.outputs[1], [-1]);
  const g = reshape(ctx, ctx.gy[0]!, [-1]);
  const scattered = op(ctx, "ScatterElements", [zero, idx, g], {
    axis: 0,
    reduction: overlap ? "add" : undefined,
  });
  return [reshape(ctx, scattered, xd)];
};

const averagePool: VjpRule = (ctx) => {
  const node = ctx.node;
  const xd = inShape(ctx);
  const od = outShape(ctx);
  const kernel = attrInts(node, "kernel_shape", [])!;
  const geo = windowGeometry(node, xd.slice(2), kernel);
  const r = kernel.length;
  const keff = kernel.map((k, i) => (k - 1) * geo.dilations[i] + 1);
  const includePad = attrInt(node, "count_include_pad", 0) === 1;
  // Window sizes as the runtime counts them, per output position.
  const counts = new Float64Array(sizeOf(od.slice(2)));
  let uniform = true;
  const spatialOut = od.slice(2);
  for (let i = 0; i < counts.length; i++) {
    let rem = i, c = 1;
    for (let a = r - 1; a >= 0; a--) {
      const o = rem % spatialOut[a];
      rem = Math.floor(rem / spatialOut[a]);
      const start = o * geo.strides[a] - geo.pads[a];
      let n = 0;
      for (let t = 0; t < kernel[a]; t++) {
        const p = start + t * geo.dilations[a];
        if (includePad ? p < xd[a + 2] + geo.pads[a + r] : p >= 0 && p < xd[a + 2]) n++;
      }
      c *= n;
    }
    counts[i] = 1 / c;
    if (c !== sizeOf(kernel)) uniform = false;
  }
  let g = ctx.gy[0]!;
  const ft = floatType(ctx);
  const channels = xd[1];
  const ones = new Float64Array(channels * sizeOf(kernel)).fill(uniform ? 1 / sizeOf(kernel) : 1);
  if (!uniform) g = op(ctx, "Mul", [g, ctx.b.constant(ft, [1, 1, ...spatialOut], counts)]);
  const w = ctx.b.constant(ft, [channels, 1, ...kernel], ones, "avgpool_ones");
  const pads = [...geo.pads];
  const outPad = xd.slice(2).map((d, i) =>
    d - (geo.strides[i] * (geo.out[i] - 1) + keff[i] - geo.pads[i] - geo.pads[i + r])
  );
  for (let i = 0; i < r; i++) {
    if (outPad[i] < 0) {
      pads[i + r] -= outPad[i];
      outPad[i] = 0;
    }
  }
  return [op(ctx, "ConvTranspose", [g, w], {
    kernel_shape: kernel,
    strides: geo.strides,
    pads,
    dilations: geo.dilations,
    group: channels,
    output_padding: outPad.some((p) => p !== 0) ? outPad : undefined,
  })];
};

// ---------------------------------------------------------------- resize

const resize: VjpRule = (ctx) => {
  onlyInput0(ctx);
  const xd = inShape(ctx);
  const { out, scales } = resizeParams(ctx, ctx.node, xd);
  const rank = xd.length;
  const changed = xd.map((_, a) => a).filter((a) => out[a] !== xd[a] || scales[a] !== 1);
  const taps = new Map(
    changed.map((a) => [a, resizeTaps(ctx.node, ctx.opset, xd[a], out[a], scales[a])]),
  );
  let g = ctx.gy[0]!;
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
    return [reduce(ctx, "ReduceSum", reshape(ctx, g, split), axes, 0)];
  }
  const cur = [...out];
  for (const a of changed) {
    const t = taps.get(a)!;
    const m = new Float64Array(out[a] * xd[a]);
    t.forEach((pairs, o) => pairs.forEach(([i, w]) => (m[o * xd[a] + i] += w)));
    const ft = floatType(ctx);
    if (a === rank - 1) {
      g = op(ctx, "MatMul", [g, ctx.b.constant(ft, [out[a], xd[a]], m, "resize_taps")]);
    } else {
      // Move the axis last, contract, move it back.
      const perm = Array.from({ length: rank }, (_, i) => i);
      [perm[a], perm[rank - 1]] = [perm[rank - 1], perm[a]];
      g = op(ctx, "Transpose", [g], { perm });
      g = op(ctx, "MatMul", [g, ctx.b.constant(ft, [out[a], xd[a]], m, "resize_taps")]);
      g = op(ctx, "Transpose", [g], { perm });
    }
    cur[a] = xd[a];
  }
  return [g];
};

/** The rule table: op type → VJP rule. */
export const VJP_RULES: Readonly<Record<string, VjpRule>> = {
  Add: add,
  Sub: sub,
  Mul: mul,
  Div: div,
  Sum: sum,
  Where: where,
  Sigmoid: sigmoid,
  Relu: relu,
  LeakyRelu: leakyRelu,
  Tanh: tanh,
  Erf: erf,
  Exp: exp,
  Log: log,
  Sqrt: sqrt,
  Reciprocal: reciprocal,
  Pow: pow,
  Neg: neg,
  Abs: abs,
  Clip: clip,
  InstanceNormalization: instanceNorm,
  LayerNormalization: layerNorm,
  BatchNormalization: batchNorm,
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: transpose,
  Concat: concat,
  Split: split,
  Slice: sliceRule,
  Pad: padRule,
  Gather: gather,
  Expand: expand,
  Tile: tile,
  MatMul: matmul,
  Gemm: gemm,
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  Resize: resize,
  Upsample: resize,
  ReduceMean: reduceRule(true),
  ReduceSum: reduceRule(false),
  GlobalAveragePool: globalAveragePool,
  MaxPool: maxPool,
  AveragePool: averagePool,
  Conv: conv,
  ConvTranspose: convTranspose,
  Identity: identity,
  Cast: cast,
  Dropout: dropout,
};

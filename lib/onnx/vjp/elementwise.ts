/**
 * Gradient rules of the elementwise arithmetic ops (broadcasting ones sum their gradient back to
 * each input's shape) and of the ops that pass values through unchanged.
 *
 * @module
 */
import { attrFloat } from "../graph.ts";
import { sizeOf } from "../tensor.ts";
import { onlyInput0, reduceTo, unaryRule, unsupported } from "./emit.ts";
import type { VjpRule } from "./rule.ts";

const add: VjpRule = (gy, node, b) => {
  const out = b.shape(node.outputs[0]);
  return node.inputs.map((x, i) => (b.needs[i] ? reduceTo(b, gy[0]!, out, b.shape(x)) : undefined));
};

const sub: VjpRule = (gy, node, b) => {
  const out = b.shape(node.outputs[0]);
  const [x, y] = node.inputs;
  return [
    b.needs[0] ? reduceTo(b, gy[0]!, out, b.shape(x)) : undefined,
    b.needs[1] ? reduceTo(b, b.op("Neg", [gy[0]!]), out, b.shape(y)) : undefined,
  ];
};

const mul: VjpRule = (gy, node, b) => {
  const out = b.shape(node.outputs[0]);
  const [x, y] = node.inputs;
  return [
    b.needs[0] ? reduceTo(b, b.op("Mul", [gy[0]!, y]), out, b.shape(x)) : undefined,
    b.needs[1] ? reduceTo(b, b.op("Mul", [gy[0]!, x]), out, b.shape(y)) : undefined,
  ];
};

const div: VjpRule = (gy, node, b) => {
  const out = b.shape(node.outputs[0]);
  const [x, y] = node.inputs;
  let gx: string | undefined;
  const yv = b.value(y);
  if (b.needs[0]) {
    // Division by a constant becomes a multiplication by its reciprocal.
    const g = yv && sizeOf(yv.dims) === 1
      ? b.op("Mul", [gy[0]!, b.scalar(1 / yv.data[0])])
      : b.op("Div", [gy[0]!, y]);
    gx = reduceTo(b, g, out, b.shape(x));
  }
  let gyIn: string | undefined;
  if (b.needs[1]) {
    // d(x/y)/dy = -(x/y)/y = -out/y, reusing the forward output.
    const g = b.op("Neg", [b.op("Div", [b.op("Mul", [gy[0]!, node.outputs[0]]), y])]);
    gyIn = reduceTo(b, g, out, b.shape(y));
  }
  return [gx, gyIn];
};

const where: VjpRule = (gy, node, b) => {
  const out = b.shape(node.outputs[0]);
  const [c, x, y] = node.inputs;
  const zero = b.scalar(0);
  return [
    undefined,
    b.needs[1] ? reduceTo(b, b.op("Where", [c, gy[0]!, zero]), out, b.shape(x)) : undefined,
    b.needs[2] ? reduceTo(b, b.op("Where", [c, zero, gy[0]!]), out, b.shape(y)) : undefined,
  ];
};

const pow: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const [x, e] = node.inputs;
  const ev = b.value(e);
  if (!ev) unsupported(node, `exponent "${e}" must be a constant`);
  const out = b.shape(node.outputs[0]);
  let g: string;
  if (sizeOf(ev.dims) === 1) {
    const p = ev.data[0];
    if (p === 1) g = gy[0]!;
    else if (p === 2) g = b.op("Mul", [gy[0]!, b.op("Mul", [x, b.scalar(2)])]);
    else if (p === 0.5) {
      g = b.op("Div", [b.op("Mul", [gy[0]!, b.scalar(0.5)]), node.outputs[0]]);
    } else {
      const xp = b.op("Pow", [x, b.scalar(p - 1)]);
      g = b.op("Mul", [gy[0]!, b.op("Mul", [xp, b.scalar(p)])]);
    }
  } else {
    const pm1 = b.constant(ev.dims, Array.from(ev.data, (v) => v - 1));
    const pc = b.constant(ev.dims, Array.from(ev.data));
    g = b.op("Mul", [gy[0]!, b.op("Mul", [b.op("Pow", [x, pm1]), pc])]);
  }
  return [reduceTo(b, g, out, b.shape(x)), undefined];
};

const clip: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const x = node.inputs[0];
  let lo: string | undefined, hi: string | undefined;
  if (b.opset < 11) {
    if (node.attrs.min) lo = b.scalar(attrFloat(node, "min", -Infinity));
    if (node.attrs.max) hi = b.scalar(attrFloat(node, "max", Infinity));
  } else {
    if (node.inputs[1]) lo = node.inputs[1];
    if (node.inputs[2]) hi = node.inputs[2];
  }
  let mask: string | undefined;
  if (lo) mask = b.op("GreaterOrEqual", [x, lo]);
  if (hi) {
    const m = b.op("LessOrEqual", [x, hi]);
    mask = mask ? b.op("And", [mask, m]) : m;
  }
  return [mask ? b.op("Where", [mask, gy[0]!, b.scalar(0)]) : gy[0]!];
};

const cast: VjpRule = (gy, node, b) => {
  const from = b.dtype(node.inputs[0]);
  const same = from === b.dtype(node.outputs[0]);
  return [same ? gy[0]! : b.op("Cast", [gy[0]!], { to: from })];
};

const passThrough: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  return [gy[0]!];
};

/**
 * Rules of Add, Sub, Mul, Div, Sum, Where, Pow, Neg, Abs, Exp, Log, Sqrt, Reciprocal, Clip,
 * Cast, Identity and Dropout (inference).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.ok("Mul" in ELEMENTWISE_RULES && "Dropout" in ELEMENTWISE_RULES);
 * ```
 */
export const ELEMENTWISE_RULES: Readonly<Record<string, VjpRule>> = {
  Add: add,
  Sub: sub,
  Mul: mul,
  Div: div,
  Sum: add,
  Where: where,
  Pow: pow,
  Neg: unaryRule((b, _x, _y, gy) => b.op("Neg", [gy])),
  Abs: unaryRule((b, x, _y, gy) => b.op("Mul", [gy, b.op("Sign", [x])])),
  Exp: unaryRule((b, _x, y, gy) => b.op("Mul", [gy, y])),
  Log: unaryRule((b, x, _y, gy) => b.op("Div", [gy, x])),
  Sqrt: unaryRule((b, _x, y, gy) => b.op("Div", [b.op("Mul", [gy, b.scalar(0.5)]), y])),
  Reciprocal: unaryRule((b, _x, y, gy) => b.op("Neg", [b.op("Mul", [gy, b.op("Mul", [y, y])])])),
  Clip: clip,
  Cast: cast,
  Identity: unaryRule((_b, _x, _y, gy) => gy),
  Dropout: passThrough,
};

// Every VJP rule checked by a directional finite difference on random inputs, in ONNX Runtime;
// the guard at the end reads the rule table itself, so a rule without a case fails. One
// concept, the case of every rule, which needs the room (over 400 lines).
import { checkGradient } from "../lib/onnx/gradient_check.ts";
import { seededRandom } from "../lib/base/random.ts";
import { type AttrInput, GraphBuilder } from "../lib/onnx/graph_builder.ts";
import { DataType, sizeOf } from "../lib/onnx/tensor.ts";
import { buildVjpGraph } from "../lib/onnx/vjp_graph.ts";
import { VJP_RULES, type VjpRule } from "../lib/onnx/vjp_rules.ts";

/**
 * Relative tolerance of |⟨∇f,v⟩ − D_v f| for every case below, D_v f the five-point central
 * difference with step ε (1e-2, or 1e-3 where inputs sit near a kink), in float32.
 */
const TOLERANCE = 1e-3;

const F = DataType.FLOAT;

type Gen = (rand: () => number, i: number, n: number) => number;
const awayFromZero: Gen = (rand) => (rand() < 0.5 ? -1 : 1) * (0.2 + 0.8 * rand());
const positive: Gen = (rand) => 0.5 + rand();
/** Distinct values with gaps ≫ ε, so that no max switches within a step. */
const distinct = (seed: number): Gen => {
  let perm: number[] | undefined;
  return (_rand, i, n) => {
    if (!perm) {
      const r = seededRandom(seed);
      perm = Array.from({ length: n }, (_, k) => k).sort(() => r() - 0.5);
    }
    return (perm[i] / n) * 2 - 1;
  };
};

interface Case {
  name: string;
  /** The key of `VJP_RULES` the case checks (default: the first word of its name). */
  op?: string;
  inputs: Record<string, { dims: number[]; gen?: Gen }>;
  build: (b: GraphBuilder, x: Record<string, string>) => string | string[];
  eps?: number;
  /** Default-domain opset of the graph (default 17). */
  opset?: number;
}

function randomConst(b: GraphBuilder, dims: number[], seed: number, gen: Gen = (r) => r() * 2 - 1) {
  const r = seededRandom(seed);
  const n = sizeOf(dims);
  return b.constant(F, dims, Array.from({ length: n }, (_, i) => gen(r, i, n)));
}

const one = (op: string, attrs: Record<string, AttrInput> = {}) =>
(
  b: GraphBuilder,
  x: Record<string, string>,
) => b.node(op, Object.values(x), attrs);

const X = (dims: number[], gen?: Gen) => ({ x: { dims, gen } });

const CASES: Case[] = [
  {
    name: "Add broadcast",
    inputs: { x: { dims: [2, 3, 4, 5] }, y: { dims: [3, 1, 5] } },
    build: one("Add"),
  },
  {
    name: "Sub broadcast",
    inputs: { x: { dims: [2, 3, 4, 1] }, y: { dims: [1, 5] } },
    build: one("Sub"),
  },
  {
    name: "Mul broadcast",
    inputs: { x: { dims: [2, 3, 4, 5] }, y: { dims: [1, 3, 1, 1] } },
    build: one("Mul"),
  },
  {
    name: "Div broadcast",
    inputs: { x: { dims: [2, 3, 4] }, y: { dims: [4], gen: positive } },
    build: one("Div"),
  },
  {
    name: "Div by constant",
    inputs: X([2, 5]),
    build: (b, { x }) => b.node("Div", [x, b.scalar(3)]),
  },
  {
    name: "Sum of three",
    inputs: { x: { dims: [2, 3] }, y: { dims: [3] }, z: { dims: [2, 1] } },
    build: one("Sum"),
  },
  {
    name: "Where",
    inputs: { x: { dims: [2, 4] }, y: { dims: [4] } },
    build: (b, { x, y }) => {
      const c = b.constant(DataType.BOOL, [2, 4], [1, 0, 0, 1, 1, 1, 0, 0]);
      return b.node("Where", [c, x, y]);
    },
  },
  { name: "Sigmoid", inputs: X([2, 3, 4], (r) => 3 * (r() * 2 - 1)), build: one("Sigmoid") },
  { name: "Relu", inputs: X([2, 3, 4], awayFromZero), build: one("Relu") },
  {
    name: "LeakyRelu",
    inputs: X([2, 3, 4], awayFromZero),
    build: one("LeakyRelu", { alpha: { float: 0.2 } }),
  },
  { name: "Tanh", inputs: X([2, 3, 4]), build: one("Tanh") },
  { name: "Erf", inputs: X([2, 3, 4]), build: one("Erf") },
  { name: "Exp", inputs: X([2, 3, 4]), build: one("Exp") },
  { name: "Log", inputs: X([2, 3, 4], positive), build: one("Log") },
  { name: "Sqrt", inputs: X([2, 3, 4], positive), build: one("Sqrt") },
  { name: "Reciprocal", inputs: X([2, 3], positive), build: one("Reciprocal") },
  { name: "Neg", inputs: X([2, 3, 4]), build: one("Neg") },
  { name: "Abs", inputs: X([2, 3, 4], awayFromZero), build: one("Abs") },
  ...[2, 3, 0.5, -1.5].map((p): Case => ({
    name: `Pow ${p}`,
    inputs: X([2, 3, 4], positive),
    build: (b, { x }) => b.node("Pow", [x, b.scalar(p)]),
  })),
  {
    name: "Clip",
    inputs: X([3, 7], (r) => {
      const v = r() * 2 - 1;
      return Math.abs(Math.abs(v) - 0.5) < 0.05 ? v * 0.8 : v;
    }),
    build: (b, { x }) => b.node("Clip", [x, b.scalar(-0.5), b.scalar(0.5)]),
  },
  {
    name: "InstanceNormalization affine",
    inputs: X([2, 3, 4, 5]),
    build: (b, { x }) =>
      b.node(
        "InstanceNormalization",
        [x, randomConst(b, [3], 5, positive), randomConst(b, [3], 6)],
        {
          epsilon: { float: 1e-5 },
        },
      ),
  },
  {
    name: "InstanceNormalization plain (GroupNorm form)",
    inputs: X([2, 4, 6, 5]),
    build: (b, { x }) => {
      const r = b.node("Reshape", [x, b.int64s([2, 2, -1])]);
      const n = b.node("InstanceNormalization", [
        r,
        b.constant(F, [2], [1, 1]),
        b.constant(F, [2], [0, 0]),
      ], { epsilon: { float: 1e-6 } });
      const back = b.node("Reshape", [n, b.int64s([2, 4, 6, 5])]);
      return b.node("Add", [
        b.node("Mul", [back, randomConst(b, [4, 1, 1], 2)]),
        randomConst(b, [4, 1, 1], 3),
      ]);
    },
  },
  {
    name: "InstanceNormalization with a zero scale",
    inputs: X([2, 3, 8]),
    build: (b, { x }) =>
      b.node("InstanceNormalization", [
        x,
        b.constant(F, [3], [0, 1.5, -2]),
        b.constant(F, [3], [0.1, 0, 2]),
      ]),
  },
  {
    name: "LayerNormalization axis -1",
    inputs: X([2, 3, 6]),
    build: (b, { x }) =>
      b.node("LayerNormalization", [x, randomConst(b, [6], 7, positive), randomConst(b, [6], 8)], {
        axis: -1,
      }),
  },
  {
    name: "LayerNormalization axis 1",
    inputs: X([2, 3, 4]),
    build: (b, { x }) =>
      b.node("LayerNormalization", [x, randomConst(b, [3, 4], 9, positive)], { axis: 1 }),
  },
  {
    name: "BatchNormalization (inference)",
    inputs: X([2, 3, 4, 4]),
    build: (b, { x }) =>
      b.node("BatchNormalization", [
        x,
        randomConst(b, [3], 1),
        randomConst(b, [3], 2),
        randomConst(b, [3], 3),
        randomConst(b, [3], 4, positive),
      ]),
  },
  {
    name: "Reshape",
    inputs: X([2, 3, 4]),
    build: (b, { x }) => b.node("Reshape", [x, b.int64s([4, -1])]),
  },
  { name: "Flatten", inputs: X([2, 3, 4]), build: one("Flatten", { axis: 2 }) },
  { name: "Transpose", inputs: X([2, 3, 4]), build: one("Transpose", { perm: [2, 0, 1] }) },
  {
    name: "Squeeze",
    inputs: X([2, 1, 4]),
    build: (b, { x }) => b.node("Squeeze", [x, b.int64s([1])]),
  },
  {
    name: "Unsqueeze",
    inputs: X([2, 4]),
    build: (b, { x }) => b.node("Unsqueeze", [x, b.int64s([0, 3])]),
  },
  {
    name: "Concat",
    inputs: { x: { dims: [2, 3, 4] }, y: { dims: [2, 2, 4] } },
    build: one("Concat", { axis: 1 }),
  },
  {
    name: "Split",
    inputs: X([2, 7, 3]),
    build: (b, { x }) =>
      b.nodeOutputs("Split", [x, b.int64s([2, 4, 1])], { axis: 1 }, { outputs: 3 }),
  },
  {
    name: "Split with an unused output",
    inputs: X([6, 3]),
    build: (b, { x }) =>
      b.nodeOutputs("Split", [x, b.int64s([2, 4])], { axis: 0 }, { outputs: 2 })[1],
  },
  {
    name: "Slice with steps and negative bounds",
    inputs: X([5, 9, 7]),
    build: (b, { x }) =>
      b.node("Slice", [
        x,
        b.int64s([1, -2, 0]),
        b.int64s([9, 0, 100]),
        b.int64s([1, 2, 0]),
        b.int64s([3, -2, 2]),
      ]),
  },
  {
    name: "Pad constant with negative pads",
    inputs: X([2, 3, 5]),
    build: (b, { x }) => b.node("Pad", [x, b.int64s([0, 1, -1, 0, 2, 1])], { mode: "constant" }),
  },
  {
    name: "Gather constant indices with repeats",
    inputs: X([3, 5, 2]),
    build: (b, { x }) =>
      b.node("Gather", [x, b.constant(DataType.INT64, [2, 2], [4, 0, -1, 4])], { axis: 1 }),
  },
  {
    name: "Expand",
    inputs: X([3, 1]),
    build: (b, { x }) => b.node("Expand", [x, b.int64s([2, 3, 4])]),
  },
  { name: "Tile", inputs: X([2, 3]), build: (b, { x }) => b.node("Tile", [x, b.int64s([2, 3])]) },
  {
    name: "MatMul batched broadcasting",
    inputs: { x: { dims: [2, 1, 3, 4] }, y: { dims: [5, 4, 6] } },
    build: one("MatMul"),
  },
  {
    name: "MatMul 1-D by 3-D",
    inputs: { x: { dims: [4] }, y: { dims: [2, 4, 3] } },
    build: one("MatMul"),
  },
  {
    name: "MatMul 3-D by 1-D",
    inputs: { x: { dims: [2, 3, 4] }, y: { dims: [4] } },
    build: one("MatMul"),
  },
  {
    name: "MatMul constant weight",
    inputs: X([2, 5, 4]),
    build: (b, { x }) => b.node("MatMul", [x, randomConst(b, [4, 3], 11)]),
  },
  {
    name: "Gemm transposed, alpha/beta, broadcast C",
    inputs: { x: { dims: [4, 3] }, y: { dims: [5, 4] }, z: { dims: [5] } },
    build: one("Gemm", { transA: 1, transB: 1, alpha: { float: 0.7 }, beta: { float: 1.3 } }),
  },
  { name: "Gemm plain", inputs: { x: { dims: [3, 4] }, y: { dims: [4, 5] } }, build: one("Gemm") },
  { name: "Softmax", inputs: X([2, 5, 3]), build: one("Softmax", { axis: 1 }) },
  { name: "LogSoftmax", inputs: X([2, 5]), build: one("LogSoftmax", { axis: -1 }) },
  ...[
    ["nearest 2× half_pixel", "nearest", "half_pixel", "round_prefer_floor", [1, 1, 2, 2]],
    ["nearest 1.5× asymmetric floor", "nearest", "asymmetric", "floor", [1, 1, 1.5, 1.5]],
    ["nearest 0.5× down", "nearest", "asymmetric", "floor", [1, 1, 0.5, 0.5]],
    ["linear 2× half_pixel", "linear", "half_pixel", "round_prefer_floor", [1, 1, 2, 2]],
    ["linear 1.7× pytorch_half_pixel", "linear", "pytorch_half_pixel", "floor", [1, 1, 1.7, 1.3]],
    ["linear 0.6× align_corners", "linear", "align_corners", "floor", [1, 1, 0.6, 0.6]],
  ].map(([name, mode, ctm, nm, scales]): Case => ({
    name: `Resize ${name}`,
    inputs: X([2, 3, 4, 6]),
    build: (b, { x }) =>
      b.node("Resize", [x, "", b.constant(F, [4], scales as number[])], {
        mode: mode as string,
        coordinate_transformation_mode: ctm as string,
        nearest_mode: nm as string,
      }),
  })),
  {
    name: "Resize linear by sizes",
    inputs: X([1, 2, 5, 4]),
    build: (b, { x }) => b.node("Resize", [x, "", "", b.int64s([1, 2, 7, 9])], { mode: "linear" }),
  },
  {
    name: "ReduceMean keepdims 0",
    inputs: X([2, 3, 4, 5]),
    build: (b, { x }) => b.node("ReduceMean", [x], { axes: [1, 3], keepdims: 0 }),
  },
  {
    name: "ReduceSum keepdims 1",
    inputs: X([2, 3, 4]),
    build: (b, { x }) => b.node("ReduceSum", [x, b.int64s([-1])], { keepdims: 1 }),
  },
  { name: "GlobalAveragePool", inputs: X([2, 3, 4, 5]), build: one("GlobalAveragePool") },
  {
    name: "MaxPool overlapping 3×3/2 padded",
    inputs: X([2, 3, 7, 7], distinct(3)),
    build: one("MaxPool", { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
    eps: 1e-3,
  },
  {
    name: "MaxPool 2×2/2",
    inputs: X([1, 2, 6, 4], distinct(4)),
    build: one("MaxPool", { kernel_shape: [2, 2], strides: [2, 2] }),
    eps: 1e-3,
  },
  {
    name: "AveragePool 3×3/2 padded, pads excluded",
    inputs: X([2, 3, 7, 6]),
    build: one("AveragePool", { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
  },
  {
    name: "AveragePool ceil mode, pads included",
    inputs: X([1, 2, 7, 7]),
    build: one("AveragePool", {
      kernel_shape: [2, 3],
      strides: [2, 2],
      pads: [0, 1, 0, 1],
      ceil_mode: 1,
      count_include_pad: 1,
    }),
  },
  ...[
    ["3×3 stride 1 pad 1 with bias", [4, 3, 3, 3], { pads: [1, 1, 1, 1] }, true],
    ["3×3 stride 2 pad 1", [4, 3, 3, 3], { pads: [1, 1, 1, 1], strides: [2, 2] }, false],
    [
      "3×3 dilation 2 asymmetric pads",
      [4, 3, 3, 3],
      { pads: [2, 1, 0, 2], dilations: [2, 2] },
      false,
    ],
    [
      "group 3 stride (2,1)",
      [6, 1, 3, 2],
      { group: 3, strides: [2, 1], pads: [1, 0, 1, 1] },
      false,
    ],
    ["1×1", [5, 3, 1, 1], {}, true],
    ["SAME_UPPER stride 2", [2, 3, 4, 4], { auto_pad: "SAME_UPPER", strides: [2, 2] }, false],
  ].map(([name, wd, attrs, bias]): Case => ({
    name: `Conv ${name}`,
    inputs: X([2, 3, 9, 8]),
    build: (b, { x }) => {
      const w = randomConst(b, wd as number[], 21);
      const ins = [x, w];
      if (bias) ins.push(randomConst(b, [(wd as number[])[0]], 22));
      return b.node("Conv", ins, attrs as Record<string, AttrInput>);
    },
  })),
  {
    name: "ConvTranspose stride 2 pads output_padding group 2",
    inputs: X([2, 4, 5, 4]),
    build: (b, { x }) =>
      b.node("ConvTranspose", [x, randomConst(b, [4, 3, 3, 3], 23)], {
        strides: [2, 2],
        pads: [1, 1, 1, 0],
        output_padding: [1, 0],
        group: 2,
      }),
  },
  {
    name: "ConvTranspose dilation 2",
    inputs: X([1, 2, 4, 4]),
    build: (b, { x }) =>
      b.node("ConvTranspose", [x, randomConst(b, [2, 3, 2, 2], 24)], { dilations: [2, 2] }),
  },
  { name: "Identity", inputs: X([2, 3]), build: one("Identity") },
  {
    name: "Cast through double",
    inputs: X([2, 3]),
    build: (b, { x }) =>
      b.node("Cast", [
        b.node("Mul", [b.node("Cast", [x], { to: DataType.DOUBLE }), b.scalar(2, DataType.DOUBLE)]),
      ], { to: F }),
  },
  {
    name: "Dropout without a mask, which folding turns into Identity",
    op: "Identity",
    inputs: X([2, 3]),
    build: one("Dropout"),
  },
  {
    // The mask output keeps the node through folding, so the Dropout rule itself runs.
    name: "Dropout with a mask output (inference)",
    inputs: X([2, 3]),
    build: (b, { x }) => b.nodeOutputs("Dropout", [x], {}, { outputs: 2 })[0],
  },
  {
    name: "SiLU as x·Sigmoid(x)",
    inputs: X([2, 3, 4], (r) => 4 * (r() * 2 - 1)),
    build: (b, { x }) => b.node("Mul", [x, b.node("Sigmoid", [x])]),
  },
  {
    name: "SiLU with its sigmoid also an output",
    inputs: X([2, 5], (r) => 4 * (r() * 2 - 1)),
    build: (b, { x }) => {
      const s = b.node("Sigmoid", [x]);
      return [b.node("Mul", [s, x]), s];
    },
  },
  {
    name: "Upsample nearest 2×3 (opset 9, scales input)",
    opset: 9,
    inputs: X([2, 3, 4, 5]),
    build: (b, { x }) => b.node("Upsample", [x, b.constant(F, [4], [1, 1, 2, 3])]),
  },
  {
    name: "Upsample linear 2× (opset 8, scales attribute)",
    opset: 8,
    inputs: X([1, 2, 3, 4]),
    build: one("Upsample", { mode: "linear", scales: { floats: [1, 1, 2, 2] } }),
  },
];

const opOf = (c: Case) => c.op ?? c.name.split(" ")[0];

/** The case's graph, its input shapes and its input values. */
function buildCase(c: Case) {
  const b = new GraphBuilder({ opset: c.opset ?? 17 });
  const names: Record<string, string> = {};
  const inputShapes: Record<string, number[]> = {};
  const values: Record<string, Float32Array> = {};
  const rand = seededRandom(c.name.length * 7919 + 13);
  for (const [k, spec] of Object.entries(c.inputs)) {
    names[k] = b.input(k, F, spec.dims);
    inputShapes[k] = spec.dims;
    const n = sizeOf(spec.dims);
    const gen = spec.gen ?? ((r: () => number) => r() * 2 - 1);
    values[k] = Float32Array.from({ length: n }, (_, i) => gen(rand, i, n));
  }
  const outs = c.build(b, names);
  for (const o of Array.isArray(outs) ? outs : [outs]) b.output(o, F, []);
  return { graph: b.graph, inputShapes, values };
}

for (const c of CASES) {
  Deno.test(`VJP rule: ${c.name}`, async () => {
    const { graph, inputShapes, values } = buildCase(c);
    const r = await checkGradient(graph, {
      inputShapes,
      inputs: values,
      eps: Number(Deno.env.get("EPS") ?? 0) || (c.eps ?? 1e-2),
    });
    if (!(r.relativeError <= TOLERANCE) || r.analytic === 0) {
      throw new Error(
        `${c.name}: ⟨∇f,v⟩ = ${r.analytic}, finite difference = ${r.numeric}, relative error ${r.relativeError} > ${TOLERANCE}`,
      );
    }
  });
}

Deno.test("VJP rules: every rule of the table has a case above, and each case applies its rule", () => {
  const problems: string[] = [];
  for (const c of CASES) {
    if (!Object.hasOwn(VJP_RULES, opOf(c))) problems.push(`case "${c.name}" names no rule`);
  }
  for (const op of Object.keys(VJP_RULES)) {
    const cases = CASES.filter((c) => opOf(c) === op);
    if (cases.length === 0) problems.push(`${op}: no case`);
    for (const c of cases) {
      // The case's gradient graph built again, with every rule noting that it ran.
      const applied = new Set<string>();
      const noting = Object.fromEntries(
        Object.entries(VJP_RULES).map(([k, rule]): [string, VjpRule] => [k, (gy, node, b) => {
          applied.add(k);
          return rule(gy, node, b);
        }]),
      );
      const { graph, inputShapes } = buildCase(c);
      buildVjpGraph(graph, { inputShapes, rules: noting });
      if (!applied.has(op)) problems.push(`${op}: case "${c.name}" never applies its rule`);
    }
  }
  if (problems.length > 0) throw new Error(problems.join("\n"));
});

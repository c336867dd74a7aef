/**
 * Gradient rules of the pooling ops: MaxPool scatters the gradient to where each maximum came
 * from, AveragePool and GlobalAveragePool spread it evenly over their windows.
 *
 * @module
 */
import { attrInt, attrInts, type Node } from "../graph.ts";
import { windowGeometry } from "../window_geometry.ts";
import { sizeOf } from "../tensor.ts";
import { reshape, unsupported } from "./emit.ts";
import type { VjpRule } from "./rule.ts";

const maxPool: VjpRule = (gy, node, b) => {
  const xd = b.shape(node.inputs[0]);
  const kernel = attrInts(node, "kernel_shape", [])!;
  const geo = windowGeometry(node, xd.slice(2), kernel);
  if (attrInt(node, "storage_order", 0) !== 0) unsupported(node, "storage_order 1");
  // The forward pass records where each maximum came from; reuse it instead of searching again.
  const indices = b.forwardOutput(1, "indices");
  const overlap = kernel.some((k, i) => (k - 1) * geo.dilations[i] + 1 > geo.strides[i]);
  if (overlap && b.opset < 16) {
    unsupported(
      node,
      `overlapping windows need ScatterElements reduction (opset ≥ 16), graph has ${b.opset}`,
    );
  }
  const zero = b.op("Expand", [b.scalar(0), b.int64s([sizeOf(xd)])]);
  const idx = reshape(b, indices, [-1]);
  const g = reshape(b, gy[0]!, [-1]);
  const scattered = b.op("ScatterElements", [zero, idx, g], {
    axis: 0,
    reduction: overlap ? "add" : undefined,
  });
  return [reshape(b, scattered, xd)];
};

/** 1 / (window size as the runtime counts it) per output position, and whether all are equal. */
function windowWeights(
  node: Node,
  xd: number[],
  od: number[],
  kernel: number[],
  geo: ReturnType<typeof windowGeometry>,
): { weights: Float64Array; uniform: boolean } {
  const r = kernel.length;
  const includePad = attrInt(node, "count_include_pad", 0) === 1;
  const spatialOut = od.slice(2);
  const weights = new Float64Array(sizeOf(spatialOut));
  let uniform = true;
  for (let i = 0; i < weights.length; i++) {
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
    weights[i] = 1 / c;
    if (c !== sizeOf(kernel)) uniform = false;
  }
  return { weights, uniform };
}

const averagePool: VjpRule = (gy, node, b) => {
  const xd = b.shape(node.inputs[0]);
  const od = b.shape(node.outputs[0]);
  const kernel = attrInts(node, "kernel_shape", [])!;
  const geo = windowGeometry(node, xd.slice(2), kernel);
  const r = kernel.length;
  const keff = kernel.map((k, i) => (k - 1) * geo.dilations[i] + 1);
  const { weights, uniform } = windowWeights(node, xd, od, kernel, geo);
  let g = gy[0]!;
  const channels = xd[1];
  const ones = new Float64Array(channels * sizeOf(kernel)).fill(uniform ? 1 / sizeOf(kernel) : 1);
  if (!uniform) g = b.op("Mul", [g, b.constant([1, 1, ...od.slice(2)], weights)]);
  const w = b.constant([channels, 1, ...kernel], ones, "avgpool_ones");
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
  return [b.op("ConvTranspose", [g, w], {
    kernel_shape: kernel,
    strides: geo.strides,
    pads,
    dilations: geo.dilations,
    group: channels,
    output_padding: outPad.some((p) => p !== 0) ? outPad : undefined,
  })];
};

const globalAveragePool: VjpRule = (gy, node, b) => {
  const dims = b.shape(node.inputs[0]);
  const g = b.op("Mul", [gy[0]!, b.scalar(1 / sizeOf(dims.slice(2)))]);
  return [b.op("Expand", [g, b.int64s(dims)])];
};

/**
 * Rules of MaxPool, AveragePool and GlobalAveragePool.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(Object.keys(POOLING_RULES), ["MaxPool", "AveragePool", "GlobalAveragePool"]);
 * ```
 */
export const POOLING_RULES: Readonly<Record<string, VjpRule>> = {
  MaxPool: maxPool,
  AveragePool: averagePool,
  GlobalAveragePool: globalAveragePool,
};

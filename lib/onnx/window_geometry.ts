/**
 * The geometry of windowed ops (Conv, ConvTranspose, the pools) over their spatial dims: kernel,
 * strides, dilations, pads with `auto_pad` resolved, and the output dims they give.
 *
 * @module
 */
import { ShapeError } from "./errors.ts";
import { attrInt, attrInts, attrString, describeNode, type Node } from "./graph.ts";

/** Resolved geometry of a convolution or pooling window over the spatial dims. */
export interface WindowGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** [begin..., end...] as in ONNX `pads`. */
  pads: number[];
  /** Output spatial dims. */
  out: number[];
}

/**
 * Resolves kernel, strides, dilations, pads (incl. auto_pad) and output dims of a window op.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const conv = {
 *   opType: "Conv",
 *   name: "c",
 *   domain: "",
 *   inputs: ["x", "w"],
 *   outputs: ["y"],
 *   attrs: {
 *     auto_pad: { type: "string" as const, value: "SAME_UPPER" },
 *     strides: { type: "ints" as const, value: [2, 2] },
 *   },
 * };
 * const geo = windowGeometry(conv, [9, 8], [3, 3]);
 * assert.deepEqual([geo.out, geo.pads], [[5, 4], [1, 0, 1, 1]]);
 * ```
 */
export function windowGeometry(node: Node, spatialIn: number[], kernel: number[]): WindowGeometry {
  const r = spatialIn.length;
  const strides = attrInts(node, "strides", undefined) ?? Array(r).fill(1);
  const dilations = attrInts(node, "dilations", undefined) ?? Array(r).fill(1);
  let pads = attrInts(node, "pads", undefined) ?? Array(2 * r).fill(0);
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  const ceil = attrInt(node, "ceil_mode", 0) === 1;
  const out: number[] = [];
  if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    pads = Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const o = Math.ceil(spatialIn[i] / strides[i]);
      const keff = (kernel[i] - 1) * dilations[i] + 1;
      const total = Math.max(0, (o - 1) * strides[i] + keff - spatialIn[i]);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === "SAME_UPPER" ? small : total - small;
      pads[i + r] = total - pads[i];
      out.push(o);
    }
  } else {
    if (autoPad === "VALID") pads = Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const keff = (kernel[i] - 1) * dilations[i] + 1;
      const span = spatialIn[i] + pads[i] + pads[i + r] - keff;
      let o = (ceil ? Math.ceil(span / strides[i]) : Math.floor(span / strides[i])) + 1;
      // A ceil-mode window must start inside the input or the leading padding.
      if (ceil && (o - 1) * strides[i] >= spatialIn[i] + pads[i]) o--;
      if (o < 1) {
        throw new ShapeError(
          `${describeNode(node)}: window of ${keff} does not fit input of ${
            spatialIn[i]
          } with pads`,
        );
      }
      out.push(o);
    }
  }
  return { kernel, strides, dilations, pads, out };
}

/**
 * Resolved ConvTranspose geometry: pads and output dims.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const up = {
 *   opType: "ConvTranspose",
 *   name: "t",
 *   domain: "",
 *   inputs: ["x", "w"],
 *   outputs: ["y"],
 *   attrs: {
 *     strides: { type: "ints" as const, value: [2, 2] },
 *     pads: { type: "ints" as const, value: [1, 1, 1, 1] },
 *   },
 * };
 * assert.deepEqual(convTransposeGeometry(up, [8, 8], [4, 4]).out, [16, 16]);
 * ```
 */
export function convTransposeGeometry(
  node: Node,
  spatialIn: number[],
  kernel: number[],
): WindowGeometry & { outputPadding: number[] } {
  const r = spatialIn.length;
  const strides = attrInts(node, "strides", undefined) ?? Array(r).fill(1);
  const dilations = attrInts(node, "dilations", undefined) ?? Array(r).fill(1);
  const outputPadding = attrInts(node, "output_padding", undefined) ?? Array(r).fill(0);
  const outputShape = attrInts(node, "output_shape", undefined);
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  let pads = attrInts(node, "pads", undefined) ?? Array(2 * r).fill(0);
  const out: number[] = [];
  const spatialOut = outputShape ? outputShape.slice(-r) : undefined;
  if (spatialOut || autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
    pads = Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const keff = (kernel[i] - 1) * dilations[i] + 1;
      const o = spatialOut ? spatialOut[i] : spatialIn[i] * strides[i];
      const total = strides[i] * (spatialIn[i] - 1) + outputPadding[i] + keff - o;
      const half = Math.floor(total / 2);
      // Matches the spec: SAME_UPPER puts the extra pad at the beginning for ConvTranspose.
      pads[i] = autoPad === "SAME_UPPER" ? total - half : half;
      pads[i + r] = total - pads[i];
      out.push(o);
    }
  } else {
    if (autoPad === "VALID") pads = Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const keff = (kernel[i] - 1) * dilations[i] + 1;
      out.push(strides[i] * (spatialIn[i] - 1) + outputPadding[i] + keff - pads[i] - pads[i + r]);
    }
  }
  return { kernel, strides, dilations, pads, out, outputPadding };
}

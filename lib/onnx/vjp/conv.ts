/**
 * Gradient rules of Conv and ConvTranspose with respect to their data input: each is the other's
 * adjoint, with the same weights.
 *
 * @module
 */
import { attrInt, attrInts } from "../graph.ts";
import { convTransposeGeometry, windowGeometry } from "../window_geometry.ts";
import { allocData, type HostTensor, sizeOf } from "../tensor.ts";
import { onlyInput0 } from "./emit.ts";
import type { VjpRule } from "./rule.ts";

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

const conv: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const [x, w] = node.inputs;
  const xd = b.shape(x), wd = b.shape(w);
  const kernel = attrInts(node, "kernel_shape", undefined) ?? wd.slice(2);
  const geo = windowGeometry(node, xd.slice(2), kernel);
  const group = attrInt(node, "group", 1);
  const r = kernel.length;
  const keff = kernel.map((k, i) => (k - 1) * geo.dilations[i] + 1);
  const wv = b.value(w);
  const flipPads = [
    ...keff.map((k, i) => k - 1 - geo.pads[i]),
    ...keff.map((k, i) => k - 1 - geo.pads[i + r]),
  ];
  if (wv && geo.strides.every((s) => s === 1) && flipPads.every((p) => p >= 0)) {
    // A stride-1 transposed convolution is a plain convolution with flipped, transposed
    // weights; runtimes optimize Conv far better than ConvTranspose.
    const wf = b.initializer(flipWeights(wv, group), "conv_wflip");
    return [b.op("Conv", [gy[0]!, wf], {
      kernel_shape: kernel,
      pads: flipPads,
      dilations: geo.dilations,
      group,
    })];
  }
  const outPad = xd.slice(2).map((d, i) =>
    d - (geo.strides[i] * (geo.out[i] - 1) + keff[i] - geo.pads[i] - geo.pads[i + r])
  );
  return [b.op("ConvTranspose", [gy[0]!, w], {
    kernel_shape: kernel,
    strides: geo.strides,
    pads: geo.pads,
    dilations: geo.dilations,
    group,
    output_padding: outPad.some((p) => p !== 0) ? outPad : undefined,
  })];
};

const convTranspose: VjpRule = (gy, node, b) => {
  onlyInput0(node, b.needs);
  const [x, w] = node.inputs;
  const xd = b.shape(x), wd = b.shape(w);
  const kernel = attrInts(node, "kernel_shape", undefined) ?? wd.slice(2);
  const geo = convTransposeGeometry(node, xd.slice(2), kernel);
  return [b.op("Conv", [gy[0]!, w], {
    kernel_shape: kernel,
    strides: geo.strides,
    pads: geo.pads,
    dilations: geo.dilations,
    group: attrInt(node, "group", 1),
  })];
};

/**
 * Rules of Conv and ConvTranspose.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(Object.keys(CONV_RULES), ["Conv", "ConvTranspose"]);
 * ```
 */
export const CONV_RULES: Readonly<Record<string, VjpRule>> = {
  Conv: conv,
  ConvTranspose: convTranspose,
};

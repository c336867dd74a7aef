/**
 * The interpolation taps of ONNX Resize along one axis, following the spec's coordinate
 * transformation and nearest rounding modes.
 *
 * @module
 */
import { UnsupportedOpError } from "./errors.ts";
import { attrInt, attrString, describeNode, type Node } from "./graph.ts";

/** For one axis: for each output index the (input index, weight) pairs of the interpolation. */
export function resizeTaps(
  node: Node,
  opset: number,
  inSize: number,
  outSize: number,
  scale: number,
): [number, number][][] {
  const unsupported = (what: string): never => {
    throw new UnsupportedOpError(`${describeNode(node)}: ${what}`);
  };
  const legacy = node.opType === "Upsample" || opset < 11;
  const mode = attrString(node, "mode", "nearest");
  const ctm = legacy
    ? "asymmetric"
    : attrString(node, "coordinate_transformation_mode", "half_pixel");
  const nearestMode = legacy ? "floor" : attrString(node, "nearest_mode", "round_prefer_floor");
  if (mode !== "nearest" && mode !== "linear") unsupported(`resize mode "${mode}"`);
  if (attrInt(node, "antialias", 0) && scale < 1) unsupported("antialias when downscaling");
  const taps: [number, number][][] = [];
  for (let o = 0; o < outSize; o++) {
    let x: number;
    switch (ctm) {
      case "half_pixel":
        x = (o + 0.5) / scale - 0.5;
        break;
      case "pytorch_half_pixel":
        x = outSize > 1 ? (o + 0.5) / scale - 0.5 : 0;
        break;
      case "align_corners":
        x = outSize === 1 ? 0 : (o * (inSize - 1)) / (outSize - 1);
        break;
      case "asymmetric":
        x = o / scale;
        break;
      default:
        return unsupported(`coordinate_transformation_mode "${ctm}"`);
    }
    if (mode === "nearest") {
      let i: number;
      const fl = Math.floor(x);
      switch (nearestMode) {
        case "round_prefer_floor":
          i = x - fl === 0.5 ? fl : Math.round(x);
          break;
        case "round_prefer_ceil":
          i = Math.round(x);
          break;
        case "floor":
          i = fl;
          break;
        case "ceil":
          i = Math.ceil(x);
          break;
        default:
          return unsupported(`nearest_mode "${nearestMode}"`);
      }
      taps.push([[Math.min(Math.max(i, 0), inSize - 1), 1]]);
    } else {
      const xc = Math.min(Math.max(x, 0), inSize - 1);
      const x0 = Math.floor(xc);
      const x1 = Math.min(x0 + 1, inSize - 1);
      const w1 = xc - x0;
      taps.push(x1 === x0 ? [[x0, 1]] : [[x0, 1 - w1], [x1, w1]]);
    }
  }
  return taps;
}

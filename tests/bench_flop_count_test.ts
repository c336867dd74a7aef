import { assertEquals } from "./fixtures/assert.ts";
import { countFlops } from "../bench/flop_count.ts";
import { GraphBuilder } from "../lib/onnx/graph_builder.ts";
import { DataType } from "../lib/onnx/tensor.ts";
import { tinySdDecoder } from "./fixtures/vae.ts";

const F = DataType.FLOAT;

function weights(dims: number[]) {
  return { dtype: F, dims, data: new Float32Array(dims.reduce((a, b) => a * b, 1)) };
}

Deno.test("countFlops: two operations per multiply-add of convolutions and matrix products", () => {
  const b = new GraphBuilder({ opset: 17 });
  const x = b.input("x", F, [2, 3, 8, 8]);
  // 3×3 conv, stride 2: out [2, 4, 4, 4], each a dot product of 3·3·3 = 27.
  const c = b.node("Conv", [x, b.initializer(weights([4, 3, 3, 3]))], {
    kernel_shape: [3, 3],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
  });
  // Grouped 1×1 conv, 2 groups: out [2, 6, 4, 4], each over 4 / 2 = 2 inputs.
  const g = b.node("Conv", [c, b.initializer(weights([6, 2, 1, 1]))], { group: 2 });
  // Transposed 2×2 stride-2 conv: every input value of [2, 6, 4, 4] spreads over 5·2·2 outputs.
  const t = b.node("ConvTranspose", [g, b.initializer(weights([6, 5, 2, 2]))], {
    kernel_shape: [2, 2],
    strides: [2, 2],
  });
  // [2, 5, 8, 8] → [2, 5, 64] · [64, 7] → [2, 5, 7], each over 64.
  const flat = b.node("Reshape", [t, b.int64s([2, 5, 64])]);
  const m = b.node("MatMul", [flat, b.initializer(weights([64, 7]))]);
  b.output(m, F, [2, 5, 7]);
  const count = countFlops(b.graph, { x: [2, 3, 8, 8] });
  assertEquals(count.byOp, {
    Conv: 2 * (2 * 4 * 4 * 4) * 27 + 2 * (2 * 6 * 4 * 4) * 2,
    ConvTranspose: 2 * (2 * 6 * 4 * 4) * (5 * 2 * 2),
    MatMul: 2 * (2 * 5 * 7) * 64,
  });
  assertEquals(count.total, 6912 + 768 + 7680 + 8960);
});

Deno.test("countFlops of a decoder grows with the pixels: four times the work at twice the side", () => {
  const graph = tinySdDecoder();
  const at = (side: number) => countFlops(graph, { latent_sample: [1, 4, side, side] }).byOp.Conv;
  // Convolutions scale exactly with the pixel count (attention's matrix products do not).
  assertEquals(at(16), 4 * at(8));
});

import { join } from "node:path";
import { createHash } from "node:crypto";
import { assertEquals, assertRejects } from "./fixtures/assert.ts";
import { encodeSafetensors, type Tensor } from "../lib/format/safetensors.ts";
import { writeSafetensorsFile } from "../lib/format/safetensors_file.ts";

Deno.test("a safetensors file written tensor by tensor has the bytes encodeSafetensors gives, and their sha256", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-st-" });
  try {
    const tensors: Record<string, Tensor> = {
      latents: {
        dtype: "F32",
        shape: [3, 2, 2],
        data: Float32Array.from({ length: 12 }, (_, i) => i / 3),
      },
      steps: { dtype: "I32", shape: [3], data: Int32Array.of(1, 2, 3) },
      mask: { dtype: "U8", shape: [5], data: Uint8Array.of(1, 0, 1, 1, 0) },
      big: { dtype: "I64", shape: [1], data: BigInt64Array.of(7n) },
    };
    const metadata = { ids: JSON.stringify(["a", "b", "c"]) };
    const path = join(dir, "out.safetensors");
    const asked: string[] = [];
    const { sha256, bytes } = await writeSafetensorsFile(path, {
      tensors: Object.fromEntries(
        Object.entries(tensors).map(([name, t]) => [name, {
          ...t,
          data: () => {
            asked.push(name);
            return Promise.resolve(t.data);
          },
        }]),
      ),
      metadata,
    });
    const expected = encodeSafetensors({ tensors, metadata });
    const written = await Deno.readFile(path);
    assertEquals(written, expected);
    assertEquals(bytes, expected.length);
    assertEquals(sha256, createHash("sha256").update(expected).digest("hex"));
    // Largest elements first, then by name: the order the bytes follow the header.
    assertEquals(asked, ["big", "latents", "steps", "mask"]);

    const failed = join(dir, "failed.safetensors");
    await assertRejects(
      () =>
        writeSafetensorsFile(failed, {
          tensors: { x: { dtype: "F32", shape: [4], data: () => new Float32Array(3) } },
        }),
      "shape [4] needs 4 elements, found 3",
    );
    assertEquals(await Deno.stat(failed).catch(() => null), null, "the partial file is removed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

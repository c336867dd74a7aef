/**
 * Writes a safetensors file tensor by tensor, so that only one tensor is in memory at a time:
 * the header is laid out from dtypes and shapes alone, then each tensor's data is asked for,
 * written and dropped. The bytes equal `encodeSafetensors` of the same tensors, and their sha256
 * is computed on the way.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  checkTensor,
  type SafetensorsDtype,
  safetensorsLayout,
  type Tensor,
} from "./safetensors.ts";
import { removeIfPresent } from "../base/fs.ts";

/** A tensor whose data is made when it is written. */
export interface LazyTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: () => Tensor["data"] | Promise<Tensor["data"]>;
}

/**
 * Writes `tensors` and `metadata` to a new file at `path` (which must not exist), fsyncs it and
 * returns its sha256 and size. A failure removes the partial file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSafetensors } from "./safetensors.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const { sha256, bytes } = await writeSafetensorsFile(`${dir}/shard.safetensors`, {
 *     tensors: {
 *       latents: { dtype: "F32", shape: [2, 4], data: () => new Float32Array(8) },
 *     },
 *     metadata: { ids: JSON.stringify(["a", "b"]) },
 *   });
 *   const written = await Deno.readFile(`${dir}/shard.safetensors`);
 *   assert.equal(written.length, bytes);
 *   assert.equal(sha256.length, 64);
 *   assert.deepEqual(decodeSafetensors(written).tensors.latents.shape, [2, 4]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function writeSafetensorsFile(
  path: string,
  { tensors, metadata = {} }: {
    tensors: Record<string, LazyTensor>;
    metadata?: Record<string, string>;
  },
): Promise<{ sha256: string; bytes: number }> {
  const { head, order, dataBytes } = safetensorsLayout({ tensors, metadata });
  const hash = createHash("sha256");
  const file = await Deno.open(path, { write: true, createNew: true });
  try {
    const write = async (bytes: Uint8Array) => {
      hash.update(bytes);
      for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
    };
    await write(head);
    for (const name of order) {
      const { dtype, shape } = tensors[name];
      const data = await tensors[name].data();
      checkTensor(name, { dtype, shape, data });
      await write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    await file.sync();
  } catch (error) {
    file.close();
    await removeIfPresent(path);
    throw error;
  }
  file.close();
  return { sha256: hash.digest("hex"), bytes: head.length + dataBytes };
}

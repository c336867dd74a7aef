/**
 * The split layout: per split one file per format (`latents.npz`, `latents.h5`,
 * `latents.safetensors`), every row-aligned array of its rows. Without buckets the arrays have
 * their plain names (`latents`, `ids`, …); with buckets each bucket has its own arrays, named
 * `<name>_<bucket>` (`latents_320x192`), and the array `buckets` lists the bucket names, because
 * latents of different sizes do not stack.
 *
 * @module
 */
import { encodeHdf5, type Hdf5Attribute } from "../format/hdf5.ts";
import { encodeNpz, type NpzArray } from "../format/npz.ts";
import { encodeSafetensors } from "../format/safetensors.ts";
import type { ObjectStore } from "../store/objects.ts";
import { asSafetensors, type ColumnOptions, rowColumns } from "./columns.ts";
import { byBucket, type PackageRow } from "./rows.ts";

/** The formats of the split layout. */
export type SplitFormat = "npz" | "hdf5" | "safetensors";

/** The file of each format. */
export const SPLIT_FILES: Record<SplitFormat, string> = {
  npz: "latents.npz",
  hdf5: "latents.h5",
  safetensors: "latents.safetensors",
};

/**
 * The name of an array of one bucket in a split file: `name` alone when the dataset has no
 * buckets, `<name>_<bucket>` when it has.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(arrayName("latents", "320x192", true), "latents_320x192");
 * assert.equal(arrayName("latents", "256x256", false), "latents");
 * ```
 */
export function arrayName(name: string, bucket: string, bucketed: boolean): string {
  return bucketed ? `${name}_${bucket}` : name;
}

/**
 * Every array of one split's file: per bucket its rows' arrays (see `rowColumns`), named by
 * {@linkcode arrayName}, plus `buckets` when bucketed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy } from "../format/npy.ts";
 * import { ObjectStore } from "../store/objects.ts";
 * import { packageRows } from "./rows.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const npy = (shape: number[]) =>
 *   store.put(encodeNpy({ dtype: "<f4", shape, data: new Float32Array(shape.reduce((a, b) => a * b)) }));
 * const metrics = {
 *   loss_initial: 0.5, loss_final: 0.25, psnr_initial: 20, psnr_final: 24.5,
 *   ssim_initial: 0.7, ssim_final: 0.8, steps: 60, stop: "converged", provider: "cpu",
 * };
 * const latent = { objects: { latent: await npy([1, 4, 32, 32]) }, meta: metrics };
 * const tensor = {
 *   objects: { tensor: await npy([1, 3, 256, 256]) },
 *   meta: {
 *     bucket: "256x256", original_size: [256, 256], crop_coords_top_left: [0, 0],
 *     crop_box: [0, 0, 256, 256], target_size: [256, 256],
 *   },
 * };
 * const ids = ["00017", "00042"];
 * const rowsBySplit = packageRows({
 *   splits: { train: ids },
 *   paths: { "00017": "images/00017.png", "00042": "images/00042.png" },
 *   labels: { "00017": { category: "cat" }, "00042": { category: "dog" } },
 *   optimized: new Map(ids.map((id) => [id, latent])),
 *   encoded: new Map(ids.map((id) => [id, latent])),
 *   preprocessed: new Map(ids.map((id) => [id, tensor])),
 *   flip: false,
 * });
 * const rows = rowsBySplit.get("train")!;
 * const arrays = await splitArrays(store, rows, {
 *   bucketed: true,
 *   columns: { flip: false, labelFields: {} },
 * });
 * assert.deepEqual(arrays.latents_256x256.shape, [2, 4, 32, 32]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function splitArrays(
  store: ObjectStore,
  rows: readonly PackageRow[],
  { bucketed, columns }: { bucketed: boolean; columns: ColumnOptions },
): Promise<Record<string, NpzArray>> {
  const groups = byBucket(rows);
  if (!bucketed && groups.size > 1) {
    throw new Error(
      `expected one image size without buckets, found ${[...groups.keys()].join(", ")}`,
    );
  }
  const out: Record<string, NpzArray> = {};
  if (bucketed) out.buckets = { dtype: "<U", shape: [groups.size], data: [...groups.keys()] };
  // An empty split still has its arrays, with no rows.
  if (groups.size === 0 && !bucketed) groups.set("", []);
  for (const [bucket, group] of groups) {
    for (const [name, array] of Object.entries(await rowColumns(store, group, columns))) {
      out[arrayName(name, bucket, bucketed)] = array;
    }
  }
  return out;
}

/**
 * Encodes one split's arrays in the chosen formats; returns file name → bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const files = await encodeSplitFiles({
 *   latents: { dtype: "<f4", shape: [1, 4, 2, 2], data: new Float32Array(16) },
 *   ids: { dtype: "<U", shape: [1], data: ["00017"] },
 * }, ["npz", "safetensors"], { attributes: { scaling_factor: 0.18215 } });
 * assert.deepEqual(Object.keys(files).sort(), ["latents.npz", "latents.safetensors"]);
 * ```
 */
export async function encodeSplitFiles(
  arrays: Record<string, NpzArray>,
  formats: readonly SplitFormat[],
  { attributes, npzExtras = {} }: {
    attributes: Record<string, Hdf5Attribute>;
    /** Small arrays only the npz file holds (what the other formats keep as attributes). */
    npzExtras?: Record<string, NpzArray>;
  },
): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {};
  if (formats.includes("npz")) files[SPLIT_FILES.npz] = encodeNpz({ ...arrays, ...npzExtras });
  if (formats.includes("hdf5")) {
    files[SPLIT_FILES.hdf5] = await encodeHdf5({ datasets: arrays, attributes });
  }
  if (formats.includes("safetensors")) {
    const { tensors, metadata } = asSafetensors(arrays);
    const strings = Object.fromEntries(
      Object.entries(attributes).map(([k, v]) => [k, String(v)]),
    );
    files[SPLIT_FILES.safetensors] = encodeSafetensors({
      tensors,
      metadata: { ...metadata, ...strings },
    });
  }
  return files;
}

/**
 * The per-image layout: one `.npz` per image under `<split>/images/<id>.npz`, the
 * `processed_data/<split>/images/*.npz` layout research code (e.g. GLO-style training loops)
 * reads, holding the image's latent, initial latent, metrics, conditioning and labels.
 *
 * @module
 */
import { encodeNpz, type NpzArray } from "../format/npz.ts";
import { hashJson } from "../store/canonical.ts";
import type { ObjectStore } from "../store/objects.ts";
import { type ColumnOptions, rowColumns } from "./columns.ts";
import type { PackageRow } from "./rows.ts";

/** Bumped by hand whenever the bytes of a per-image file change for the same recipe. */
export const PER_IMAGE_FORMAT = "latentforge-image-npz/1";

/** How many images are packed at once. */
const CONCURRENCY = 8;

/** Batched array names and their per-image names. */
const SINGULAR: Record<string, string> = {
  ids: "id",
  latents: "latent",
  initial_latents: "initial_latent",
  latents_flipped: "latent_flipped",
  initial_latents_flipped: "initial_latent_flipped",
};

/**
 * The dataset path of an image's file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(perImageFile("train", "00017"), "train/images/00017.npz");
 * ```
 */
export function perImageFile(split: string, id: string): string {
  return `${split}/images/${id}.npz`;
}

/**
 * The arrays of one image's file: the row's arrays without their batch axis, named in the
 * singular (`latent` C×h×w, `initial_latent`, `latent_flipped`, `id`), scalars for the metrics,
 * `original_size` and the other conditioning as small vectors, and `bucket`.
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
 *   ssim_initial: 0.7, ssim_final: 0.8, steps: 60, passes: 61, stop: "converged", provider: "cpu",
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
 * const arrays = await perImageArrays(store, rows[0], { flip: false, labelFields: {} });
 * assert.deepEqual(arrays.latent.shape, [4, 32, 32]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function perImageArrays(
  store: ObjectStore,
  row: PackageRow,
  columns: ColumnOptions,
): Promise<Record<string, NpzArray>> {
  const batched = await rowColumns(store, [row], columns);
  const out: Record<string, NpzArray> = {};
  for (const [name, array] of Object.entries(batched)) {
    out[SINGULAR[name] ?? name] = { ...array, shape: array.shape.slice(1) } as NpzArray;
  }
  out.bucket = { dtype: "<U", shape: [], data: [row.bucket] };
  return out;
}

/**
 * Writes (or reuses) every image's file into the store; returns dataset path → digest,
 * recipe → digest (what a later run can reuse) and how many files were reused.
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
 *   ssim_initial: 0.7, ssim_final: 0.8, steps: 60, passes: 61, stop: "converged", provider: "cpu",
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
 * const { files, reused } = await writePerImage(store, rows, {
 *   columns: { flip: false, labelFields: {} },
 * });
 * assert.deepEqual(Object.keys(files).sort(), ["train/images/00017.npz", "train/images/00042.npz"]);
 * assert.equal(reused, 0);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function writePerImage(
  store: ObjectStore,
  rows: readonly PackageRow[],
  { columns, reuse = () => Promise.resolve(null), signal }: {
    columns: ColumnOptions;
    /** The stored file an earlier run built from the same recipe, if still in the store. */
    reuse?: (recipe: string) => Promise<string | null>;
    signal?: AbortSignal;
  },
): Promise<
  { files: Record<string, string>; recipes: Record<string, string>; reused: number }
> {
  const files: Record<string, string> = {};
  const recipes: Record<string, string> = {};
  let reused = 0;
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      signal?.throwIfAborted();
      const row = rows[next++];
      const recipe = hashJson({
        format: PER_IMAGE_FORMAT,
        columns,
        row: {
          id: row.id,
          bucket: row.bucket,
          image: row.image,
          flipped: row.flipped,
          labels: row.labels,
        },
      });
      let digest = await reuse(recipe);
      if (digest !== null) reused++;
      else digest = await store.put(encodeNpz(await perImageArrays(store, row, columns)));
      files[perImageFile(row.split, row.id)] = digest;
      recipes[recipe] = digest;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, rows.length) }, worker));
  return { files, recipes, reused };
}

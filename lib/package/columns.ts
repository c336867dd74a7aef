/**
 * The row-aligned arrays of a group of rows (one split's bucket, one shard, one image): ids,
 * latents, metrics, conditioning and labels, under the names every format uses.
 *
 * @module
 */
import { decodeNpy, decodeNpyInto, type NpyArray } from "../format/npy.ts";
import type { NpzArray } from "../format/npz.ts";
import type { Tensor } from "../format/safetensors.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { OptimizeMetrics, PackagedLatent, PackageRow } from "./rows.ts";

/** The metrics columns, float32 (and `steps` and `passes`, int32). */
export const METRIC_COLUMNS = [
  "loss_initial",
  "loss_final",
  "psnr_initial",
  "psnr_final",
  "ssim_initial",
  "ssim_final",
] as const;

/** The conditioning columns, int32, with their widths. */
export const CONDITIONING_COLUMNS = {
  original_size: 2,
  crop_coords_top_left: 2,
  crop_box: 4,
  target_size: 2,
} as const;

/** How many latents are read from the store at once. */
const READ_CONCURRENCY = 16;

/** Options of {@linkcode rowColumns}. */
export interface ColumnOptions {
  /** Whether the rows carry flipped latents (`latents_flipped` and friends). */
  flip: boolean;
  /** Label fields and their kinds (see {@linkcode labelKinds}), each a column `label_<field>`. */
  labelFields: Readonly<Record<string, LabelKind>>;
  /** Set with `optimize.method: "none"`: the encoder's latents only, no metrics columns. */
  encodeOnly?: boolean;
}

/**
 * How a label column is stored: float32 (NaN where missing), text ("" where missing), or
 * int64 (-1 where missing; a class index).
 */
export type LabelKind = "number" | "text" | "integer";

/**
 * The kind of every label field over all rows of a dataset, so that every shard and file
 * stores a field the same way: a field whose values are all numbers (or missing) is a number,
 * and one of `integerFields` (a class index) an integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PackageRow } from "./rows.ts";
 *
 * // Only the labels matter here.
 * const rows = [
 *   { labels: { category: "cat", age_group_confidence: 0.9 } },
 *   { labels: { category: "dog", age_group_confidence: null } },
 * ] as unknown as PackageRow[];
 * assert.deepEqual(labelKinds(rows, ["category", "age_group_confidence"]), {
 *   category: "text",
 *   age_group_confidence: "number",
 * });
 * ```
 */
export function labelKinds(
  rows: Iterable<Pick<PackageRow, "labels">>,
  fields: readonly string[],
  integerFields: readonly string[] = [],
): Record<string, LabelKind> {
  const kinds: Record<string, LabelKind> = Object.fromEntries(
    fields.map((f) => [f, integerFields.includes(f) ? "integer" : "number"]),
  );
  const free = fields.filter((f) => !integerFields.includes(f));
  for (const row of rows) {
    for (const field of free) {
      const v = row.labels[field];
      if (v !== null && v !== undefined && typeof v !== "number") kinds[field] = "text";
    }
  }
  return kinds;
}

/** Raised when a group's latents do not stack (different shapes within one bucket). */
export class ColumnError extends Error {
  override readonly name = "ColumnError";
}

/**
 * The arrays of `rows`, row-aligned: `ids`; `latents` and `initial_latents` (N×C×h×w float32);
 * with flips `latents_flipped`, `initial_latents_flipped` and `crop_coords_top_left_flipped`;
 * the metrics (`loss_*`, `psnr_*`, `ssim_*` float32, `steps` and `passes` int32); the conditioning
 * (`original_size`, `crop_coords_top_left`, `target_size` N×2 and `crop_box` N×4, int32,
 * (height, width) and (top, left) ordered); and one `label_<field>` per label (text, float32
 * with NaN where a number is missing, or int64 with -1 where a class index is missing).
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
 * const arrays = await rowColumns(store, rows, { flip: false, labelFields: { category: "text" } });
 * assert.deepEqual(arrays.ids.data, ["00017", "00042"]);
 * assert.deepEqual(arrays.label_category.data, ["cat", "dog"]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function rowColumns(
  store: ObjectStore,
  rows: readonly PackageRow[],
  { flip, labelFields, encodeOnly = false }: ColumnOptions,
  { latents = true }: { latents?: boolean } = {},
): Promise<Record<string, NpzArray>> {
  const n = rows.length;
  const images = rows.map((r) => r.image);
  const out: Record<string, NpzArray> = {
    ids: { dtype: "<U", shape: [n], data: rows.map((r) => r.id) },
  };
  // Listing the digests also checks that every row has what the columns need.
  const digests = latentDigests(rows, flip, encodeOnly);
  if (latents) {
    for (const [name, list] of Object.entries(digests)) out[name] = await stackLatents(store, list);
  }
  const flipped = flip ? rows.map((r) => r.flipped!) : [];
  if (!encodeOnly) {
    const metrics = images.map((l) => l.metrics!);
    for (const name of METRIC_COLUMNS) out[name] = metric(metrics, (m) => m[name]);
    out.steps = { dtype: "<i4", shape: [n], data: Int32Array.from(metrics, (m) => m.steps) };
    out.passes = { dtype: "<i4", shape: [n], data: Int32Array.from(metrics, (m) => m.passes) };
  }
  for (const [name, width] of Object.entries(CONDITIONING_COLUMNS)) {
    const key = name as keyof typeof CONDITIONING_COLUMNS;
    out[name] = {
      dtype: "<i4",
      shape: [n, width],
      data: Int32Array.from(images.flatMap((l) => l.conditioning[key])),
    };
  }
  if (flip) {
    out.crop_coords_top_left_flipped = {
      dtype: "<i4",
      shape: [n, 2],
      data: Int32Array.from(flipped.flatMap((l) => l.conditioning.crop_coords_top_left)),
    };
  }
  for (const [field, kind] of Object.entries(labelFields)) {
    out[`label_${field}`] = labelColumn(rows, field, kind);
  }
  return out;
}

/**
 * The digests of the latent columns of `rows`, by column name: `latents`, `initial_latents`
 * and, with flips, `latents_flipped` and `initial_latents_flipped` (with `encodeOnly`, no
 * `initial_*`: the latents are the encoder's).
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
 * const { latents } = latentDigests(rows, false);
 * assert.deepEqual(latents, [rows[0].image.latent, rows[1].image.latent]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export function latentDigests(
  rows: readonly PackageRow[],
  flip: boolean,
  encodeOnly = false,
): Record<string, string[]> {
  const out: Record<string, string[]> = { latents: rows.map((r) => r.image.latent) };
  if (!encodeOnly) out.initial_latents = rows.map((r) => r.image.initial);
  if (flip) {
    const flipped: PackagedLatent[] = rows.map((r) => {
      if (!r.flipped) throw new ColumnError(`image ${r.id}: expected a flipped latent, found none`);
      return r.flipped;
    });
    out.latents_flipped = flipped.map((l) => l.latent);
    if (!encodeOnly) out.initial_latents_flipped = flipped.map((l) => l.initial);
  }
  return out;
}

/**
 * The same arrays as safetensors tensors plus the text columns (ids, text labels) as JSON
 * metadata, since safetensors holds numbers only.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const { tensors, metadata } = asSafetensors({
 *   latents: { dtype: "<f4", shape: [1, 4, 2, 2], data: new Float32Array(16) },
 *   ids: { dtype: "<U", shape: [1], data: ["00017"] },
 * });
 * assert.deepEqual(Object.keys(tensors), ["latents"]);
 * assert.equal(JSON.parse(metadata.ids)[0], "00017");
 * ```
 */
export function asSafetensors(
  arrays: Record<string, NpzArray>,
): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const tensors: Record<string, Tensor> = {};
  const metadata: Record<string, string> = {};
  for (const [name, a] of Object.entries(arrays)) {
    if (a.dtype === "<U") {
      metadata[name] = JSON.stringify(a.data);
      continue;
    }
    const dtype = a.dtype === "<i4"
      ? "I32"
      : a.dtype === "<i8"
      ? "I64"
      : a.dtype === "<f4"
      ? "F32"
      : null;
    if (dtype === null) throw new ColumnError(`array "${name}": unexpected dtype ${a.dtype}`);
    tensors[name] = {
      dtype,
      shape: a.shape,
      data: a.data as Float32Array | Int32Array | BigInt64Array,
    };
  }
  return { tensors, metadata };
}

/**
 * Reads latents (`.npy` objects of shape 1×C×h×w) into one N×C×h×w array — into `into` when it
 * is given and large enough (so a caller writing one tensor after another reuses one buffer).
 * Each file is read into a reused scratch buffer and copied once into place.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeNpy } from "../format/npy.ts";
 * import { ObjectStore } from "../store/objects.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const latent = (v: number) =>
 *   store.put(encodeNpy({ dtype: "<f4", shape: [1, 4, 2, 2], data: new Float32Array(16).fill(v) }));
 * const { shape, data } = await stackLatents(store, [await latent(1), await latent(2)]);
 * assert.deepEqual(shape, [2, 4, 2, 2]);
 * assert.deepEqual([data[0], data[16]], [1, 2]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function stackLatents(
  store: ObjectStore,
  digests: readonly string[],
  into?: Float32Array,
): Promise<NpyArray> {
  let shape: number[] | null = null;
  let data: Float32Array = new Float32Array(0);
  let per = 0;
  let next = 0;
  const worker = async () => {
    let scratch: Uint8Array = new Uint8Array(1 << 16);
    while (next < digests.length) {
      const i = next++;
      let length: number;
      // Checked against its digest: a corrupt latent never reaches the dataset.
      ({ scratch, length } = await store.readInto(digests[i], scratch));
      const bytes = scratch.subarray(0, length);
      const source = `latent ${digests[i]}`;
      if (shape === null) {
        shape = decodeNpy(bytes, source).shape.slice(1);
        per = shape.reduce((a, b) => a * b, 1);
        const n = digests.length * per;
        data = into && into.length >= n ? into.subarray(0, n) : new Float32Array(n);
      }
      const found = decodeNpyInto(bytes, data, i * per, source).slice(1);
      if (found.join() !== shape.join()) {
        throw new ColumnError(`latents of one group differ in shape: [${found}] vs [${shape}]`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, digests.length) }, worker));
  return { dtype: "<f4", shape: [digests.length, ...(shape ?? [0, 0, 0])], data };
}

function metric(
  metrics: readonly OptimizeMetrics[],
  pick: (m: OptimizeMetrics) => number,
): NpyArray {
  return { dtype: "<f4", shape: [metrics.length], data: Float32Array.from(metrics, pick) };
}

function labelColumn(rows: readonly PackageRow[], field: string, kind: LabelKind): NpzArray {
  const values = rows.map((r) => r.labels[field] ?? null);
  if (kind === "integer") {
    return {
      dtype: "<i8",
      shape: [rows.length],
      data: BigInt64Array.from(values, (v) => BigInt(v === null ? -1 : v as number)),
    };
  }
  if (kind === "number") {
    return {
      dtype: "<f4",
      shape: [rows.length],
      data: Float32Array.from(values, (v) => v === null ? NaN : v as number),
    };
  }
  return {
    dtype: "<U",
    shape: [rows.length],
    data: values.map((v) => v === null ? "" : String(v)),
  };
}

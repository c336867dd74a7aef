/**
 * Safetensors shards: each split's rows cut, bucket by bucket, into files of `shard_size` images
 * (or at most that many bytes), in id order within the bucket, so an image's shard depends only
 * on the ids of its split and bucket. Each shard is built from exactly its rows and described by
 * a recipe (the digests and values of those rows, and the format version): a shard whose recipe
 * was built before is taken from the store as it is, so a change to some images re-encodes only
 * the shards that hold them.
 *
 * @module
 */
import { type LazyTensor, writeSafetensorsFile } from "../format/safetensors_file.ts";
import { hashJson } from "../store/canonical.ts";
import type { ObjectStore } from "../store/objects.ts";
import {
  asSafetensors,
  type ColumnOptions,
  latentDigests,
  rowColumns,
  stackLatents,
} from "./columns.ts";
import { byBucket, type PackageRow } from "./rows.ts";

/** Bumped by hand whenever the bytes a recipe gives change (a new column, another layout). */
export const SHARD_FORMAT = "latentforge-shard/1";

/** How big a shard is: a count of images, or a size in bytes (`"256MB"`, `"1GiB"`, `"500kB"`). */
export type ShardSize = number | string;

/** One planned shard. */
export interface PlannedShard {
  /** Path in the dataset: `<split>/shards/<bucket>-<nnnnn>.safetensors`. */
  file: string;
  split: string;
  bucket: string;
  /** Its rows, in order (row i of every tensor is `rows[i]`). */
  rows: PackageRow[];
}

/** Raised for a shard size that is not a count or a byte size. */
export class ShardSizeError extends Error {
  override readonly name = "ShardSizeError";
}

/** A shard size in bytes, as written in a config: a number and a unit. */
export const SHARD_BYTES = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)\s*$/i;

/** Images per shard when `shard_size` is not set. */
export const DEFAULT_SHARD_SIZE = 1000;

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/**
 * Reads a shard size: a positive integer is a count of images, a string a size in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseShardSize(1000), { images: 1000 });
 * assert.deepEqual(parseShardSize("256MB"), { bytes: 256000000 });
 * ```
 */
export function parseShardSize(size: ShardSize): { images: number } | { bytes: number } {
  if (typeof size === "number") {
    if (Number.isInteger(size) && size > 0) return { images: size };
    throw new ShardSizeError(
      `shard_size: expected a positive whole number of images, found ${size}`,
    );
  }
  const m = SHARD_BYTES.exec(size);
  const bytes = m ? Math.floor(Number(m[1]) * UNITS[m[2].toLowerCase()]) : NaN;
  if (!(bytes > 0)) {
    throw new ShardSizeError(
      `shard_size: expected a count of images or a size such as "256MB" or "1GiB", found ${
        JSON.stringify(size)
      }`,
    );
  }
  return { bytes };
}

/**
 * Cuts each split's rows into shards: bucket by bucket (in name order), consecutive rows in id
 * order, `images` per shard or as many as fit in `bytes` (at least one). `rowBytes` gives the
 * bytes one row of a bucket takes.
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
 * const plan = planShards(rowsBySplit, { size: 1, rowBytes: () => 4 * 32 * 32 * 4 * 2 });
 * assert.deepEqual(plan.map((s) => s.file), [
 *   "train/shards/256x256-00000.safetensors",
 *   "train/shards/256x256-00001.safetensors",
 * ]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export function planShards(
  rowsBySplit: ReadonlyMap<string, readonly PackageRow[]>,
  { size, rowBytes }: { size: ShardSize; rowBytes: (bucket: string) => number },
): PlannedShard[] {
  const perShard = imagesPerShard(size, rowBytes);
  const plan: PlannedShard[] = [];
  for (const [split, rows] of rowsBySplit) {
    for (const [bucket, group] of byBucket(rows)) {
      const per = perShard(bucket);
      for (let start = 0, n = 0; start < group.length; start += per, n++) {
        plan.push({
          file: shardFile(split, bucket, n),
          split,
          bucket,
          rows: group.slice(start, start + per),
        });
      }
    }
  }
  return plan;
}

/**
 * How many images each shard of a bucket holds: `size` images, or as many rows of
 * `rowBytes(bucket)` bytes as fit in `size` bytes (at least one).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(imagesPerShard(1000, () => 0)("256x256"), 1000);
 * assert.equal(imagesPerShard("1MB", () => 16_512)("256x256"), 60);
 * ```
 */
export function imagesPerShard(
  size: ShardSize,
  rowBytes: (bucket: string) => number,
): (bucket: string) => number {
  const parsed = parseShardSize(size);
  return (bucket) =>
    "images" in parsed ? parsed.images : Math.max(1, Math.floor(parsed.bytes / rowBytes(bucket)));
}

/**
 * The dataset path of shard `n` of a split's bucket.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(shardFile("train", "256x256", 3), "train/shards/256x256-00003.safetensors");
 * ```
 */
export function shardFile(split: string, bucket: string, n: number): string {
  return `${split}/shards/${bucket}-${String(n).padStart(5, "0")}.safetensors`;
}

/** Facts every shard carries in its metadata; part of every recipe. */
export type ShardContext = Record<string, string>;

/**
 * A shard's recipe: the hash of everything its bytes are made of — the format version, its
 * place, the shared context, the column options, and per row the id, the digests of its latents
 * and its metrics, conditioning and labels.
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
 * const [shard] = planShards(rowsBySplit, { size: 1000, rowBytes: () => 0 });
 * const columns = { flip: false, labelFields: {} };
 * const recipe = shardRecipe(shard, { scaling_factor: "0.18215" }, columns);
 * // Another scaling factor changes every latent, so another recipe.
 * assert.notEqual(recipe, shardRecipe(shard, { scaling_factor: "0.13025" }, columns));
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export function shardRecipe(
  shard: PlannedShard,
  context: ShardContext,
  columns: ColumnOptions,
): string {
  return hashJson({
    format: SHARD_FORMAT,
    file: shard.file,
    context,
    columns,
    rows: shard.rows.map((r) => ({
      id: r.id,
      image: r.image,
      flipped: r.flipped,
      labels: r.labels,
    })),
  });
}

/** What {@linkcode writeShards} did. */
export interface WrittenShards {
  /** Dataset path → digest of the stored shard. */
  files: Record<string, string>;
  /** Recipe → digest, for every shard: what a later run can reuse. */
  recipes: Record<string, string>;
  /** Shards taken from the store as they were. */
  reused: number;
  /** Shards built from their rows. */
  built: number;
}

/** Options of {@linkcode writeShards}. */
export interface WriteShardsOptions {
  /** Facts written into every shard's metadata (model digests, scaling factor…). */
  context: ShardContext;
  columns: ColumnOptions;
  /** The latent shape (C, h, w) of a bucket. */
  latentShape: (bucket: string) => number[];
  /**
   * The stored shard an earlier run built from the same recipe, if it is still in the store.
   * @default {() => null}
   */
  reuse?: (recipe: string) => Promise<string | null>;
  /** Stops between shards when aborted. */
  signal?: AbortSignal;
}

/**
 * Builds (or reuses) every planned shard and stores it. A shard is written tensor by tensor, so
 * at most one latent tensor of one shard is in memory at a time.
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
 * const plan = planShards(rowsBySplit, { size: 1000, rowBytes: () => 0 });
 * const { files, reused, built } = await writeShards(store, plan, {
 *   context: { scaling_factor: "0.18215" },
 *   columns: { flip: false, labelFields: {} },
 *   latentShape: () => [4, 32, 32],
 * });
 * assert.deepEqual([Object.keys(files).length, reused, built], [1, 0, 1]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function writeShards(
  store: ObjectStore,
  plan: readonly PlannedShard[],
  { context, columns, latentShape, reuse = () => Promise.resolve(null), signal }:
    WriteShardsOptions,
): Promise<WrittenShards> {
  const written: WrittenShards = { files: {}, recipes: {}, reused: 0, built: 0 };
  for (const shard of plan) {
    signal?.throwIfAborted();
    const recipe = shardRecipe(shard, context, columns);
    let digest = await reuse(recipe);
    if (digest !== null) {
      written.reused++;
    } else {
      const small = await rowColumns(store, shard.rows, columns, { latents: false });
      const { tensors, metadata } = asSafetensors(small);
      const lazy: Record<string, LazyTensor> = Object.fromEntries(
        Object.entries(tensors).map(([name, t]) => [name, { ...t, data: () => t.data }]),
      );
      const shape = [shard.rows.length, ...latentShape(shard.bucket)];
      // The latent tensors are written one after another, so they share one buffer.
      const buffer = new Float32Array(shape.reduce((a, b) => a * b, 1));
      for (
        const [name, digests] of Object.entries(
          latentDigests(shard.rows, columns.flip, columns.encodeOnly),
        )
      ) {
        lazy[name] = {
          dtype: "F32",
          shape,
          data: async () => (await stackLatents(store, digests, buffer)).data as Float32Array,
        };
      }
      const tmp = store.tempPath("shard");
      const { sha256 } = await writeSafetensorsFile(tmp, {
        tensors: lazy,
        metadata: {
          ...metadata,
          ...context,
          format: SHARD_FORMAT,
          split: shard.split,
          bucket: shard.bucket,
        },
      });
      digest = await store.putFile(tmp, sha256);
      written.built++;
    }
    written.files[shard.file] = digest;
    written.recipes[recipe] = digest;
  }
  return written;
}

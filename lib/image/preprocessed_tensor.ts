/**
 * What preprocess keeps of an image, and how its tensor is had again. The float32 tensor is a
 * pure function of the source image and the preprocessing options (decode, crop, lanczos3 to
 * 8-bit pixels, then one table lookup per value), costs milliseconds to compute, and is twelve
 * times the size of the SD latent it feeds at 256² (786 KB against 16 KB; its 8-bit pixels
 * alone are 196 KB): so it is not kept. preprocess records the recipe — where the image is,
 * the options — and the tensor's identity, the sha256 of its float32 `.npy` bytes; encode,
 * optimize and the report recompute the tensor from the recipe and check it against that
 * identity, so what they compute from is bit for bit what the key says.
 *
 * The identity is the digest earlier versions stored the tensor under, so that caches holding
 * float tensors keep their encoder latents and optimized results: preprocess names it as the
 * identity its dependants key on (`ActionResult.identity`), and a tensor stored by an earlier
 * version is still read as such.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { decodeNpy, encodeNpy } from "../format/npy.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { Output } from "../store/records.ts";
import { type InPlaceImage, readInPlace } from "../dataset/image_source.ts";
import type { BucketOptions } from "./buckets.ts";
import { type CropMode, preprocessImage } from "./preprocess.ts";

/** The preprocessing options a tensor was made with (see preprocess.ts). */
export interface RecipeOptions {
  size: number;
  crop: CropMode;
  buckets: Partial<BucketOptions>;
  flip: boolean;
  inputRange: [number, number];
}

/** How an image's tensor is computed again, and what it must hash to. */
export interface PreprocessRecipe {
  /** The source image: a stored object, or where a local one lies (with its size and MD5). */
  image: { object: string } | { in_place: InPlaceImage };
  options: RecipeOptions;
  /** sha256 of the tensor's float32 `.npy` bytes. */
  tensor: string;
}

/** A preprocessed tensor, planar float32 in the model's input range. */
export interface PreprocessedTensor {
  data: Float32Array;
  /** `[1, 3, height, width]`. */
  shape: number[];
}

/** Raised when a recomputed tensor differs from the one its recipe recorded. */
export class TensorMismatchError extends Error {
  override readonly name = "TensorMismatchError";
}

/**
 * The identity of a tensor: the sha256 of its float32 `.npy` bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.match(tensorIdentity(new Float32Array(3), [1, 3, 1, 1]), /^[0-9a-f]{64}$/);
 * ```
 */
export function tensorIdentity(data: Float32Array, shape: number[]): string {
  return createHash("sha256").update(encodeNpy({ dtype: "<f4", shape, data })).digest("hex");
}

/**
 * The tensor a preprocess output stands for: computed again from its recipe (the source read
 * where it is, its bytes checked) and checked against the recorded identity — or, for an output
 * an earlier version wrote, read from the store. `label` names the image in errors.
 *
 * @example
 * ```ts ignore
 * // encode, optimize:
 * const { data, shape } = await preprocessedTensor(ctx.store, item.inputs.preprocess, `image ${item.id}`);
 * ```
 */
export async function preprocessedTensor(
  store: ObjectStore,
  preprocessed: Output,
  label: string,
): Promise<PreprocessedTensor> {
  const stored = preprocessed.objects.tensor;
  if (stored !== undefined) {
    const npy = decodeNpy(await store.get(stored), `tensor of ${label}`);
    return { data: npy.data as Float32Array, shape: npy.shape };
  }
  const recipe = (preprocessed.meta as { recipe?: PreprocessRecipe }).recipe;
  if (recipe === undefined) {
    throw new Error(`${label}: preprocess recorded neither a tensor nor how to compute it`);
  }
  // A stored image is read through the store, which checks its digest: a corrupt object is
  // found (and quarantined) here, not taken for an image that does not decode.
  const input = "object" in recipe.image
    ? await store.get(recipe.image.object)
    : await readInPlace(recipe.image.in_place);
  const { options } = recipe;
  const { tensor, shape } = await preprocessImage(input, {
    ...options,
    preview: false,
    source: label,
  });
  const found = tensorIdentity(tensor, shape);
  if (found !== recipe.tensor) {
    throw new TensorMismatchError(
      `${label}: the preprocessed pixels computed again differ from those preprocess recorded ` +
        `(tensor sha256 expected ${recipe.tensor}, found ${found}): this machine does not ` +
        `decode the image as the one that preprocessed it; --force preprocess records it anew`,
    );
  }
  return { data: tensor, shape };
}

/**
 * Aspect-ratio buckets, as latent caches for training keep them: a set of resolutions of about
 * one area, every side a multiple of a step, so that images keep most of their pixels instead of
 * being cut to one square, and images of one bucket stack into one batch.
 *
 * The set follows the recipe users know from kohya's sd-scripts (`--bucket_reso_steps`,
 * `--min_bucket_reso`, `--max_bucket_reso`, `--bucket_no_upscale`): for each width from the
 * smallest side to the largest in steps, the tallest height that keeps the area, plus its
 * transpose and the square. An image goes to the bucket whose aspect ratio is nearest its own,
 * measured in log aspect ratio so that 2:1 and 1:2 are equally far from 1:1; it is resized to
 * cover the bucket and center-cropped by what remains. Without upscaling, an image's bucket is
 * its own size (shrunk to the area if larger) rounded down to the step, so it is cropped by less
 * than one step per side and never enlarged.
 *
 * Bucket names are `WxH` (width × height, as resolutions are usually written); every size in the
 * conditioning metadata is (height, width), as SDXL conditions on it.
 *
 * @module
 */

/** One bucket: the pixel size images of it are resized to. */
export interface Bucket {
  width: number;
  height: number;
}

/** Options of {@linkcode bucketResolutions} and {@linkcode bucketForImage}. */
export interface BucketOptions {
  /** Target area in pixels (e.g. 256² for `preprocess.size` 256). */
  area: number;
  /**
   * Every side is a multiple of this; it must be a multiple of the VAE's spatial factor so
   * that latents have whole sides.
   * @default {64}
   */
  step?: number;
  /**
   * Smallest side of a bucket; a multiple of `step`.
   * @default {half the square side, rounded down to the step (at least one step)}
   */
  minSide?: number;
  /**
   * Largest side of a bucket; a multiple of `step`.
   * @default {twice the square side, rounded down to the step}
   */
  maxSide?: number;
  /**
   * Never enlarge an image: its bucket is its own size, shrunk to `area` (and `maxSide`) if
   * larger, rounded down to `step`.
   * @default {false}
   */
  noUpscale?: boolean;
}

/** Where one image's pixels come from and where they go. */
export interface CoverCrop {
  bucket: Bucket;
  /** Resize factor from the original (after EXIF orientation) to the bucket. */
  scale: number;
  /** The region of the original kept, in original pixels: top, left, height, width. */
  box: { top: number; left: number; height: number; width: number };
  /** SDXL's `crop_coords_top_left`: the crop's offset (top, left) in resized pixels. */
  cropTopLeft: [number, number];
}

/** Raised for bucket options that cannot make buckets, or an image no bucket can hold. */
export class BucketError extends Error {
  override readonly name = "BucketError";
  /** The option at fault (`step`, `min_side`, …), when an option is. */
  readonly field?: string;
  constructor(message: string, options?: { field?: string }) {
    super(message);
    this.field = options?.field;
  }
}

/** The `preprocess.buckets` config section (snake_case, as in the config file). */
export interface BucketConfig {
  area?: number;
  step?: number;
  min_side?: number;
  max_side?: number;
  no_upscale?: boolean;
}

/** The default bucket step (kohya's `--bucket_reso_steps`). */
export const DEFAULT_BUCKET_STEP = 64;

/**
 * The options with their defaults filled in, checked.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(resolveBucketOptions({ area: 256 * 256 }), {
 *   area: 65536,
 *   step: 64,
 *   minSide: 128,
 *   maxSide: 512,
 *   noUpscale: false,
 * });
 * ```
 */
export function resolveBucketOptions(options: BucketOptions): Required<BucketOptions> {
  const { area, step = DEFAULT_BUCKET_STEP, noUpscale = false } = options;
  if (!Number.isInteger(step) || step <= 0) {
    throw new BucketError(`buckets.step: expected a positive integer, found ${step}`, {
      field: "step",
    });
  }
  if (!Number.isFinite(area) || area < step * step) {
    throw new BucketError(
      `buckets.area: expected at least step² = ${step * step} pixels, found ${area}`,
      { field: "area" },
    );
  }
  const square = Math.floor(Math.sqrt(area) / step) * step;
  const minSide = options.minSide ?? Math.max(step, Math.floor(square / 2 / step) * step);
  const maxSide = options.maxSide ?? 2 * square;
  for (const [name, side] of [["min_side", minSide], ["max_side", maxSide]] as const) {
    if (!Number.isInteger(side) || side <= 0 || side % step !== 0) {
      throw new BucketError(
        `buckets.${name}: expected a positive multiple of step ${step}, found ${side}`,
        { field: name },
      );
    }
  }
  if (minSide > maxSide) {
    throw new BucketError(
      `buckets.min_side: expected at most max_side ${maxSide}, found ${minSide}`,
      { field: "min_side" },
    );
  }
  if (minSide * minSide > area) {
    throw new BucketError(
      `buckets.min_side: expected min_side² ≤ area ${area}, found ${minSide}² = ${
        minSide * minSide
      }`,
      { field: "min_side" },
    );
  }
  return { area, step, minSide, maxSide, noUpscale };
}

/**
 * The bucket options of a `preprocess` config: its `buckets` section, with the area defaulting
 * to `size`².
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(bucketOptionsFromConfig(256, { step: 64, no_upscale: true }), {
 *   area: 65536,
 *   step: 64,
 *   minSide: undefined,
 *   maxSide: undefined,
 *   noUpscale: true,
 * });
 * ```
 */
export function bucketOptionsFromConfig(size: number, config: BucketConfig = {}): BucketOptions {
  return {
    area: config.area ?? size * size,
    step: config.step,
    minSide: config.min_side,
    maxSide: config.max_side,
    noUpscale: config.no_upscale,
  };
}

/**
 * What is wrong with a `preprocess.buckets` config section, as the config validator reports it
 * (the field and the message), or `null`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(bucketProblem(256, { step: 64, min_side: 100 }), {
 *   field: "min_side",
 *   message: "expected a positive multiple of step 64",
 * });
 * ```
 */
export function bucketProblem(
  size: number,
  config: BucketConfig,
): { field: string; message: string } | null {
  try {
    resolveBucketOptions(bucketOptionsFromConfig(size, config));
    return null;
  } catch (error) {
    if (!(error instanceof BucketError)) throw error;
    const field = error.field ?? "step";
    // The validator adds what it found itself.
    const message = error.message.replace(`buckets.${field}: `, "").replace(/, found [^,]*$/, "");
    return { field, message };
  }
}

/**
 * The bucket set: for every width from `minSide` to `maxSide` in steps, the tallest height (a
 * multiple of the step, within the sides) whose area does not exceed `area`, with its transpose,
 * plus the largest square within the area. Sorted by aspect ratio (width / height), ascending.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const buckets = bucketResolutions({ area: 256 * 256, step: 64 });
 * assert.equal(
 *   buckets.map(bucketName).join(" "),
 *   "128x512 128x448 128x384 192x320 256x256 320x192 384x128 448x128 512x128",
 * );
 * ```
 */
export function bucketResolutions(options: BucketOptions): Bucket[] {
  const { area, step, minSide, maxSide } = resolveBucketOptions(options);
  const seen = new Map<string, Bucket>();
  const add = (width: number, height: number) => {
    const b = { width, height };
    seen.set(bucketName(b), b);
  };
  const square = Math.min(maxSide, Math.floor(Math.sqrt(area) / step) * step);
  if (square >= minSide) add(square, square);
  for (let width = minSide; width <= maxSide; width += step) {
    const height = Math.min(maxSide, Math.floor(area / width / step) * step);
    if (height < minSide) continue;
    add(width, height);
    add(height, width);
  }
  return [...seen.values()].sort((a, b) => a.width / a.height - b.width / b.height);
}

/**
 * The bucket of the set whose aspect ratio is nearest the image's, in log aspect ratio; of two
 * equally near, the one listed first (the narrower).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const buckets = bucketResolutions({ area: 256 * 256, step: 64 });
 * assert.deepEqual(nearestBucket(481, 321, buckets), { width: 320, height: 192 });
 * ```
 */
export function nearestBucket(width: number, height: number, buckets: readonly Bucket[]): Bucket {
  if (buckets.length === 0) throw new BucketError("expected at least one bucket, found none");
  const target = Math.log(width / height);
  let best = buckets[0];
  let bestDistance = Infinity;
  for (const b of buckets) {
    const distance = Math.abs(Math.log(b.width / b.height) - target);
    // A tolerance keeps the choice stable across the last bits of floating point.
    if (distance < bestDistance - 1e-12) {
      best = b;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * The bucket of one image (its size after EXIF orientation) under `options`: the nearest of
 * {@linkcode bucketResolutions}, or, with `noUpscale`, its own size shrunk to fit the area and
 * `maxSide`, rounded down to the step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(bucketForImage(481, 321, { area: 256 * 256 }), { width: 320, height: 192 });
 * assert.deepEqual(
 *   bucketForImage(481, 321, { area: 256 * 256, noUpscale: true }),
 *   { width: 256, height: 192 },
 * );
 * ```
 */
export function bucketForImage(width: number, height: number, options: BucketOptions): Bucket {
  if (!(width > 0 && height > 0)) {
    throw new BucketError(`expected an image of positive size, found ${width}×${height}`);
  }
  const resolved = resolveBucketOptions(options);
  if (!resolved.noUpscale) return nearestBucket(width, height, bucketResolutions(resolved));
  const { area, step, minSide, maxSide } = resolved;
  const shrink = Math.min(1, Math.sqrt(area / (width * height)), maxSide / Math.max(width, height));
  const bucket = {
    width: Math.floor(width * shrink / step) * step,
    height: Math.floor(height * shrink / step) * step,
  };
  if (Math.min(bucket.width, bucket.height) < minSide) {
    throw new BucketError(
      `image ${width}×${height}: expected both sides to reach min_side ${minSide} without ` +
        `upscaling, found a ${bucketName(bucket)} bucket (set buckets.no_upscale to false, or ` +
        `lower buckets.min_side)`,
    );
  }
  return bucket;
}

/**
 * How an image of `width`×`height` fills `bucket`: resized by the smallest factor that covers
 * it, then center-cropped by the remainder (the crop is rounded to whole original pixels).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const c = coverCrop(481, 321, { width: 320, height: 192 });
 * assert.deepEqual(c.box, { top: 16, left: 0, height: 289, width: 481 });
 * assert.deepEqual(c.cropTopLeft, [11, 0]);
 * ```
 */
export function coverCrop(width: number, height: number, bucket: Bucket): CoverCrop {
  const scale = Math.max(bucket.width / width, bucket.height / height);
  const keptWidth = Math.min(width, Math.max(1, Math.round(bucket.width / scale)));
  const keptHeight = Math.min(height, Math.max(1, Math.round(bucket.height / scale)));
  const left = Math.floor((width - keptWidth) / 2);
  const top = Math.floor((height - keptHeight) / 2);
  return {
    bucket,
    scale,
    box: { top, left, height: keptHeight, width: keptWidth },
    cropTopLeft: [Math.round(top * scale), Math.round(left * scale)],
  };
}

/**
 * The same crop seen in the horizontally flipped image: the box mirrored about the vertical
 * axis, and its offset recomputed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const c = coverCrop(100, 50, { width: 64, height: 64 });
 * assert.equal(mirrorCrop(c, 100).box.left, 100 - 25 - 50);
 * ```
 */
export function mirrorCrop(crop: CoverCrop, width: number): CoverCrop {
  const left = width - crop.box.left - crop.box.width;
  return {
    ...crop,
    box: { ...crop.box, left },
    cropTopLeft: [crop.cropTopLeft[0], Math.round(left * crop.scale)],
  };
}

/**
 * A bucket's name: `WxH`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(bucketName({ width: 320, height: 192 }), "320x192");
 * ```
 */
export function bucketName(bucket: Bucket): string {
  return `${bucket.width}x${bucket.height}`;
}

/**
 * Reads a bucket name back.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseBucketName("320x192"), { width: 320, height: 192 });
 * ```
 */
export function parseBucketName(name: string): Bucket {
  const m = /^(\d+)x(\d+)$/.exec(name);
  if (!m) throw new BucketError(`expected a bucket name WxH (e.g. "320x192"), found "${name}"`);
  return { width: Number(m[1]), height: Number(m[2]) };
}

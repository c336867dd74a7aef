/**
 * preprocess: every image of every split, decoded (EXIF orientation honoured), made RGB,
 * cropped — to its center square, or with `preprocess.crop: "buckets"` to the aspect-ratio
 * bucket nearest its own — resized with lanczos3 and scaled to the model's input range, stored as
 * float32 NCHW `.npy` bytes. With `preprocess.flip`, each image also has the item `<id>#flip`:
 * the same image mirrored, encoded and optimized as an item of its own. (The report renders its
 * few sample originals from these tensors, so no per-image preview is encoded.)
 *
 * Reads: the splits of `label-split` (which images) and the bytes of `fetch-images`.
 * Produces per item: `tensor` (`.npy`, 1×3×h×w); metadata: the bucket and the conditioning
 * (original size, crop offset and box, target size).
 *
 * @module
 */
import { each } from "../lib/dag/task.ts";
import { encodeNpy } from "../lib/format/npy.ts";
import { fetchedImage } from "../lib/dataset/image_source.ts";
import { preprocessConcurrency, preprocessImage } from "../lib/image/preprocess.ts";
import { bucketOptionsFromConfig } from "../lib/image/buckets.ts";
import { unflippedId, withFlippedIds } from "../lib/image/flipped_ids.ts";
import type { Config } from "../config/schema.ts";
import type { SplitsObject } from "./label_split.ts";

export default each<Config>({
  name: "preprocess",
  deps: ["label-split", "fetch-images"],
  config: ["preprocess.size", "preprocess.crop", "preprocess.buckets", "model.input_range"],
  // Flipping adds items (each with its own parameters) and changes no other item's result.
  reads: ["preprocess.flip"],
  version: "4",
  source: import.meta.url,
  describe: "crop, resize and normalise every image",
  concurrency: preprocessConcurrency,
  async items(ctx, up) {
    const splits = await ctx.store.getJson<SplitsObject>(
      up.aggregate("label-split").objects.splits,
    );
    const images = up.items("fetch-images");
    // Every id of a split passed verify-sizes, so its image exists.
    const ids = [...new Set(Object.values(splits.splits).flat())].sort()
      .filter((id) => images.has(id));
    if (!ctx.config.preprocess.flip) {
      return ids.map((id) => ({ id, inputs: { image: images.get(id)! } }));
    }
    return withFlippedIds(ids).map((id) => {
      const image = unflippedId(id);
      return image === null
        ? { id, inputs: { image: images.get(id)! } }
        : { id, inputs: { image: images.get(image)! }, params: { flip: true } };
    });
  },
  async run(ctx, item) {
    const { size, crop, buckets } = ctx.config.preprocess;
    const flip = (item.params as { flip?: boolean } | undefined)?.flip === true;
    const out = await preprocessImage(await fetchedImage(ctx.store, item.inputs.image), {
      size,
      crop,
      buckets: bucketOptionsFromConfig(size, buckets),
      flip,
      inputRange: ctx.config.model.input_range,
      preview: false,
      // Name the image as the user knows it: its id and the file it came from.
      source: `image ${item.id} (${(item.inputs.image.meta as { path?: string }).path})`,
    });
    const { tensor, shape, sourceWidth, sourceHeight } = out;
    const npy = await ctx.store.put(encodeNpy({ dtype: "<f4", shape, data: tensor }));
    return {
      objects: { tensor: npy },
      meta: {
        shape,
        source_size: [sourceWidth, sourceHeight],
        bucket: out.bucket,
        flip,
        ...out.conditioning,
      },
    };
  },
});

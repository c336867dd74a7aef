/**
 * preprocess: every image of every split, decoded (EXIF orientation honoured), made RGB,
 * cropped — to its center square, or with `preprocess.crop: "buckets"` to the aspect-ratio
 * bucket nearest its own — resized with lanczos3 and scaled to the model's input range as a
 * float32 NCHW tensor. With `preprocess.flip`, each image also has the item `<id>#flip`: the same
 * image mirrored, encoded and optimized as an item of its own.
 *
 * The tensor is not kept: it costs milliseconds to compute again and is twelve times the size of
 * the latent it feeds. What is recorded is how to compute it (the image and the options) and its
 * identity, the sha256 of its float32 `.npy` bytes, which its dependants key on; they compute it
 * again and check it (lib/image/preprocessed_tensor.ts). The identity is the digest earlier
 * versions stored the tensor under, so their encoder latents and optimized results stay cached.
 *
 * Reads: the splits of `label-split` (which images) and the images of `fetch-images`.
 * Produces per item: metadata: the bucket and the conditioning (original size, crop offset and
 * box, target size) and the recipe (image, options, tensor identity).
 *
 * @module
 */
import { each, type Json } from "../lib/dag/task.ts";
import { orderedReader } from "../lib/dag/item_order.ts";
import { fetchedImage, type InPlaceImage } from "../lib/dataset/image_source.ts";
import {
  type PreprocessRecipe,
  type RecipeOptions,
  tensorIdentity,
} from "../lib/image/preprocessed_tensor.ts";
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
  // 5: the tensor is computed again by its readers, not stored (its identity is unchanged).
  version: "5",
  source: import.meta.url,
  describe: "crop, resize and normalise every image",
  concurrency: preprocessConcurrency,
  async *items(ctx, up) {
    const splits = await ctx.store.getJson<SplitsObject>(
      up.aggregate("label-split").objects.splits,
    );
    const images = up.items("fetch-images");
    const image = orderedReader(images, (id) => images.get(id));
    // Every id of a split passed verify-sizes, so its image exists.
    const ids = [...new Set(Object.values(splits.splits).flat())].sort()
      .filter((id) => images.has(id));
    const flip = ctx.config.preprocess.flip;
    for (const id of flip ? withFlippedIds(ids) : ids) {
      const base = flip ? unflippedId(id) : null;
      const out = (await image(base ?? id))!.out;
      yield base === null
        ? { id, inputs: { image: out } }
        : { id, inputs: { image: out }, params: { flip: true } };
    }
  },
  async run(ctx, item) {
    const { size, crop, buckets } = ctx.config.preprocess;
    const flip = (item.params as { flip?: boolean } | undefined)?.flip === true;
    const fetched = item.inputs.image;
    const options: RecipeOptions = {
      size,
      crop,
      buckets: bucketOptionsFromConfig(size, buckets),
      flip,
      inputRange: ctx.config.model.input_range,
    };
    const out = await preprocessImage(await fetchedImage(ctx.store, fetched), {
      ...options,
      preview: false,
      // Name the image as the user knows it: its id and the file it came from.
      source: `image ${item.id} (${(fetched.meta as { path?: string }).path})`,
    });
    const { shape, sourceWidth, sourceHeight } = out;
    const tensor = tensorIdentity(out.tensor, shape);
    const meta = {
      shape,
      source_size: [sourceWidth, sourceHeight],
      bucket: out.bucket,
      flip,
      ...out.conditioning,
    };
    const image = fetched.objects.image !== undefined
      ? { object: fetched.objects.image }
      : { in_place: (fetched.meta as unknown as { in_place: InPlaceImage }).in_place };
    const recipe: PreprocessRecipe = { image, options, tensor };
    const objects: Record<string, string> = {};
    if (fetched.objects.image !== undefined) objects.image = fetched.objects.image;
    return {
      // The stored image the recipe reads, as an object of this output: a reader that finds it
      // damaged has this item (and so the download) run again within the run.
      objects,
      meta: { ...meta, recipe: recipe as unknown as Json },
      // What the tensor is, not how it is had again: where the image lies reruns nothing.
      identity: { objects: { tensor }, meta },
    };
  },
});

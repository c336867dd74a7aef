/**
 * preprocess: every image of every split, decoded (EXIF orientation honoured), made RGB,
 * center-cropped, resized to `preprocess.size` with lanczos3 and scaled to the model's input
 * range, stored as float32 NCHW `.npy` bytes. (The report renders its few sample originals from
 * these tensors, so no per-image preview is encoded.)
 *
 * Reads: the splits of `label-split` (which images) and the bytes of `fetch-images`.
 * Produces per item: `tensor` (`.npy`, 1×3×size×size).
 *
 * @module
 */
import { each } from "../lib/dag/task.ts";
import { encodeNpy } from "../lib/format/npy.ts";
import { preprocessConcurrency, preprocessImage } from "../lib/image/preprocess.ts";
import type { Config } from "../config/schema.ts";
import type { SplitsObject } from "./label_split.ts";

export default each<Config>({
  name: "preprocess",
  deps: ["label-split", "fetch-images"],
  config: ["preprocess", "model.input_range"],
  version: "2",
  source: import.meta.url,
  describe: "crop, resize and normalise every image",
  concurrency: preprocessConcurrency,
  async items(ctx, up) {
    const splits = await ctx.store.getJson<SplitsObject>(
      up.aggregate("label-split").objects.splits,
    );
    const images = up.items("fetch-images");
    // Every id of a split passed verify-sizes, so its image exists.
    const ids = [...new Set(Object.values(splits.splits).flat())].sort();
    return ids.filter((id) => images.has(id)).map((id) => ({
      id,
      inputs: { image: images.get(id)! },
    }));
  },
  async run(ctx, item) {
    const image = item.inputs.image.objects.image;
    const { tensor, shape, sourceWidth, sourceHeight } = await preprocessImage(
      ctx.store.path(image),
      {
        size: ctx.config.preprocess.size,
        crop: ctx.config.preprocess.crop,
        inputRange: ctx.config.model.input_range,
        preview: false,
        // Name the image as the user knows it: its id and the file it came from.
        source: `image ${item.id} (${(item.inputs.image.meta as { path?: string }).path})`,
      },
    );
    const npy = await ctx.store.put(encodeNpy({ dtype: "<f4", shape, data: tensor }));
    return {
      objects: { tensor: npy },
      meta: { shape, source_size: [sourceWidth, sourceHeight] },
    };
  },
});

/**
 * verify-sizes: every downloaded image decoded far enough to read its pixel size, checked
 * against the spec; with `download.verify_pixels`, also the MD5 of its decoded RGB pixels. Once
 * all are done, the count of verified images is checked against the spec's (or the `--limit`):
 * an item missing without a failure of its own (here or upstream, where it is reported) fails
 * the check with both counts and the first missing ids.
 *
 * Reads: `fetch-images` (a stored image, or a local one where it lies, its bytes checked against
 * the listing's MD5). Produces per item: metadata (width, height).
 *
 * @module
 */
import { each } from "../lib/dag/task.ts";
import { verifyPixels } from "../lib/dataset/pixels.ts";
import { fetchedImage } from "../lib/dataset/image_source.ts";
import type { Config } from "../config/schema.ts";

/** Raised when fewer images were verified than the spec lists. */
export class ShortDatasetError extends Error {
  override readonly name = "ShortDatasetError";
}

interface FetchMeta {
  path: string;
  pixel_size: [number, number] | null;
  pixel_md5: string | null;
}

export default each<Config>({
  name: "verify-sizes",
  deps: ["fetch-images"],
  config: ["download.verify_pixels"],
  version: "1",
  source: import.meta.url,
  describe: "check pixel sizes and the item count",
  async run(ctx, item) {
    const fetched = item.inputs["fetch-images"];
    const expected = fetched.meta as unknown as FetchMeta;
    // A stored image by its path; a local one read where it lies, its bytes checked.
    const input = await fetchedImage(ctx.store, fetched);
    const { width, height, pixelMd5 } = await verifyPixels(
      input,
      { pixelSize: expected.pixel_size, pixelMd5: expected.pixel_md5 },
      ctx.config.download.verify_pixels,
    ).catch((e) => {
      // Name the image as the user knows it, not by its copy in the store.
      const name = typeof input === "string" ? input : "image bytes";
      const reason = (e as Error).message.replaceAll(`${name}: `, "").replaceAll(name, "");
      throw new Error(`image ${item.id} (${expected.path}): ${reason}`);
    });
    return { objects: {}, meta: { width, height, pixel_md5: pixelMd5 } };
  },
  finish(_ctx, { done, expected, failed }) {
    const missing = expected.filter((id) => !done.has(id) && !failed.has(id));
    if (missing.length === 0) return Promise.resolve();
    return Promise.reject(
      new ShortDatasetError(
        `expected ${expected.length} verified images, found ${done.size}; missing ${missing.length}: ` +
          `${missing.slice(0, 10).join(", ")}${missing.length > 10 ? ", …" : ""}`,
      ),
    );
  },
});

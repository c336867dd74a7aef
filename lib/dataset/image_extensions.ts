/**
 * Which file names are images: the endings of the formats sharp's libvips decodes here, used
 * alike by dataset folders and by the local copies `dataset.adopt` names. (BMP is not among
 * them: the libvips that sharp ships has no BMP loader.)
 *
 * @module
 */

/** File name endings that count as images by default: what sharp decodes here. */
export const IMAGE_EXTENSIONS: readonly string[] = [
  ".jpg",
  ".jpeg",
  ".png",
  ".webp",
  ".tif",
  ".tiff",
  ".avif",
  ".gif",
];

/**
 * Lowercase, with the dot: "JPG" and ".jpg" both mean files ending in ".jpg".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(normalExtensions(["JPG", ".Png"]), [".jpg", ".png"]);
 * ```
 */
export function normalExtensions(extensions: readonly string[]): string[] {
  return extensions.map((x) => (x.startsWith(".") ? x : `.${x}`).toLowerCase());
}

/**
 * A test of whether a file name ends in one of `extensions` (case ignored; with or without the
 * dot). Default {@link IMAGE_EXTENSIONS}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const isImage = imageNameTest();
 * assert.equal(isImage("00042.PNG"), true);
 * assert.equal(isImage("00042.bmp"), false);
 * assert.equal(imageNameTest(["jpg"])("a.png"), false);
 * ```
 */
export function imageNameTest(
  extensions: readonly string[] = IMAGE_EXTENSIONS,
): (name: string) => boolean {
  const exts = normalExtensions(extensions);
  return (name) => {
    const lower = name.toLowerCase();
    return exts.some((x) => lower.endsWith(x));
  };
}

/**
 * What a dataset's inputs hold that its user should know about before trusting it: images so
 * small that preprocessing enlarged them more than {@link UPSCALE_NOTE_FACTOR}× (their latents
 * encode interpolation blur), and byte-identical source files (the same picture twice). Both
 * are kept unless the config excludes them; the log, `manifest.json` and the report name them.
 *
 * @module
 */

/** Enlargement beyond this factor is noted. */
export const UPSCALE_NOTE_FACTOR = 2;

/** What is known of one image of the dataset. */
export interface NotedImage {
  id: string;
  /** MD5 of the source file, when known. */
  md5: string | null;
  /** Width and height of the decoded source (after EXIF orientation), when known. */
  sourceSize: readonly [number, number] | null;
  /** Height and width the image was resized to cover (its bucket), with `crop: "buckets"`. */
  targetSize?: readonly [number, number] | null;
}

/** An image enlarged more than {@link UPSCALE_NOTE_FACTOR}×. */
export interface UpscaledImage {
  id: string;
  width: number;
  height: number;
  /** How much the image was enlarged (the larger factor when the two sides differ). */
  factor: number;
}

/** What can be left out of a dataset (`package.exclude`). */
export type ExcludeKind = "upscaled" | "duplicates";

/** The notes on a dataset's images. */
export interface InputNotes {
  upscaled: UpscaledImage[];
  /** Groups of ids whose source files are byte-identical; ids and groups sorted. */
  duplicates: string[][];
  /** Images to leave out, with why: every upscaled one, all but the first of each group. */
  excluded: { id: string; reason: string }[];
  /** Classes of a class-folder dataset that some splits lack, with those splits. */
  classes_missing?: { class: string; absent: string[] }[];
}

/**
 * Notes the images that `preprocess` (`size`, `crop`) enlarges more than 2× and the groups of
 * byte-identical files, and which of them `exclude` leaves out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const notes = inputNotes([
 *   { id: "a", md5: "x", sourceSize: [10, 10] },
 *   { id: "b", md5: "x", sourceSize: [512, 512] },
 * ], { size: 256, crop: "center" });
 * assert.equal(notes.upscaled[0].factor, 25.6);
 * assert.deepEqual(notes.duplicates, [["a", "b"]]);
 * ```
 */
export function inputNotes(
  images: readonly NotedImage[],
  { size, crop, exclude = [] }: {
    size: number;
    crop: "center" | "none" | "buckets";
    exclude?: readonly ExcludeKind[];
  },
): InputNotes {
  const upscaled: UpscaledImage[] = [];
  const byMd5 = new Map<string, string[]>();
  for (const image of images) {
    if (image.sourceSize) {
      const [width, height] = image.sourceSize;
      // A centre crop keeps the shorter side whole; without a crop each side is stretched; a
      // bucket is covered, so the side that needs more enlargement decides.
      const [th, tw] = crop === "buckets" && image.targetSize ? image.targetSize : [size, size];
      const factor = crop === "center"
        ? size / Math.min(width, height)
        : Math.max(tw / width, th / height);
      if (factor > UPSCALE_NOTE_FACTOR) upscaled.push({ id: image.id, width, height, factor });
    }
    if (image.md5) byMd5.set(image.md5, [...byMd5.get(image.md5) ?? [], image.id]);
  }
  const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  upscaled.sort((a, b) => order(a.id, b.id));
  const duplicates = [...byMd5.values()].filter((g) => g.length > 1).map((g) => g.sort(order))
    .sort((a, b) => order(a[0], b[0]));
  const excluded = new Map<string, string>();
  if (exclude.includes("upscaled")) {
    for (const u of upscaled) {
      excluded.set(u.id, `upscaled ${u.factor.toFixed(1)}× from ${u.width}×${u.height}`);
    }
  }
  if (exclude.includes("duplicates")) {
    for (const [first, ...rest] of duplicates) {
      for (const id of rest) {
        if (!excluded.has(id)) excluded.set(id, `byte-identical to ${first}`);
      }
    }
  }
  return {
    upscaled,
    duplicates,
    excluded: [...excluded].map(([id, reason]) => ({ id, reason })).sort((a, b) =>
      order(a.id, b.id)
    ),
  };
}

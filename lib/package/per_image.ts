/**
 * The per-image layout: one `.npz` per image under `<split>/images/<id>.npz`, the
 * `processed_data/<split>/images/*.npz` layout research code (e.g. GLO-style training loops)
 * reads, holding the image's latent, initial latent, metrics, conditioning and labels.
 *
 * @module
 */
import { encodeNpz, type NpzArray } from "../format/npz.ts";
import { hashJson } from "../store/canonical.ts";
import type { ObjectStore } from "../store/objects.ts";
import { type ColumnOptions, rowColumns } from "./columns.ts";
import type { PackageRow } from "./rows.ts";

/** Bumped by hand whenever the bytes of a per-image file change for the same recipe. */
export const PER_IMAGE_FORMAT = "latentforge-image-npz/1";

/** How many images are packed at once. */
const CONCURRENCY = 8;

/** Batched array names and their per-image names. */
const SINGULAR: Record<string, string> = {
  ids: "id",
  latents: "latent",
  initial_latents: "initial_latent",
  latents_flipped: "latent_flipped",
  initial_latents_flipped: "initial_latent_flipped",
};

/**
 * The dataset path of an image's file.
 *
 * @example
 * ```ts
 * perImageFile("train", "00017"); // "train/images/00017.npz"
 * ```
 */
export function perImageFile(split: string, id: string): string {
  return `${split}/images/${id}.npz`;
}

/**
 * The arrays of one image's file: the row's arrays without their batch axis, named in the
 * singular (`latent` C×h×w, `initial_latent`, `latent_flipped`, `id`), scalars for the metrics,
 * `original_size` and the other conditioning as small vectors, and `bucket`.
 *
 * @example
 * ```ts
 * import { ObjectStore } from "../store/objects.ts";
 * import type { PackageRow } from "./rows.ts";
 * declare const row: PackageRow;
 * const arrays = await perImageArrays(new ObjectStore("cache"), row, {
 *   flip: false,
 *   labelFields: {},
 * });
 * ```
 */
export async function perImageArrays(
  store: ObjectStore,
  row: PackageRow,
  columns: ColumnOptions,
): Promise<Record<string, NpzArray>> {
  const batched = await rowColumns(store, [row], columns);
  const out: Record<string, NpzArray> = {};
  for (const [name, array] of Object.entries(batched)) {
    out[SINGULAR[name] ?? name] = { ...array, shape: array.shape.slice(1) } as NpzArray;
  }
  out.bucket = { dtype: "<U", shape: [], data: [row.bucket] };
  return out;
}

/**
 * Writes (or reuses) every image's file into the store; returns dataset path → digest,
 * recipe → digest (what a later run can reuse) and how many files were reused.
 *
 * @example
 * ```ts
 * import { ObjectStore } from "../store/objects.ts";
 * import type { PackageRow } from "./rows.ts";
 * declare const rows: PackageRow[];
 * const { files } = await writePerImage(new ObjectStore("cache"), rows, {
 *   columns: { flip: false, labelFields: {} },
 * });
 * ```
 */
export async function writePerImage(
  store: ObjectStore,
  rows: readonly PackageRow[],
  { columns, reuse = () => Promise.resolve(null), signal }: {
    columns: ColumnOptions;
    /** The stored file an earlier run built from the same recipe, if still in the store. */
    reuse?: (recipe: string) => Promise<string | null>;
    signal?: AbortSignal;
  },
): Promise<
  { files: Record<string, string>; recipes: Record<string, string>; reused: number }
> {
  const files: Record<string, string> = {};
  const recipes: Record<string, string> = {};
  let reused = 0;
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      signal?.throwIfAborted();
      const row = rows[next++];
      const recipe = hashJson({
        format: PER_IMAGE_FORMAT,
        columns,
        row: {
          id: row.id,
          bucket: row.bucket,
          image: row.image,
          flipped: row.flipped,
          labels: row.labels,
        },
      });
      let digest = await reuse(recipe);
      if (digest !== null) reused++;
      else digest = await store.put(encodeNpz(await perImageArrays(store, row, columns)));
      files[perImageFile(row.split, row.id)] = digest;
      recipes[recipe] = digest;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, rows.length) }, worker));
  return { files, recipes, reused };
}

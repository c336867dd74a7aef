/**
 * The columnar index (`index/`): where every image of the dataset is, with its bucket,
 * conditioning, labels, caption and metadata, as `.npy` arrays one row per image that numpy
 * memory-maps, and a small `header.json` naming them. Opening a dataset then reads the header
 * and maps the arrays, whatever the number of images; a reader decodes only the rows it reads.
 *
 * The writer is fed the rows one at a time, in the dataset's order (split, then bucket, then id),
 * with the place of each image's latents; the facts of each file (its sha256, where its latent
 * tensors start) come when the file is done. The same rows and facts give the same bytes, so
 * the index is cached and reused like every other output of `package`. While the dataset is
 * small the same feed also gives `index.json` ({@linkcode INDEX_JSON_MAX_IMAGES} images).
 *
 * Arrays (N images, F files; texts are offsets + UTF-8 pairs, see `index_columns.ts`):
 * `id` (text); `file` (int32: row of the files table), `row` (int32: row in every tensor of the
 * file, -1 for a per-image file), `bucket` (int32: place in the header's `buckets`); the
 * conditioning as in the dataset files (int32 N×2, `crop_box` N×4); `label_<field>` (int64 with
 * -1 where missing for an integer field, float64 with NaN for a number, int32 codes into the
 * text column `label_<field>.values` with -1 for a text field); `caption` and `meta` (text,
 * `meta` as JSON, "" where none) when any image has one; the files table: `files.path` (text),
 * `files.sha256` (uint8 F×32), `files.rows`, `files.split`, `files.bucket` (int32, -1 where a
 * file holds several buckets) and `files.offsets` (int64 F×4: the byte where the data of each of
 * `latents`, `initial_latents`, `latents_flipped`, `initial_latents_flipped` starts in the file,
 * -1 where unknown or absent).
 *
 * @module
 */
import { CONDITIONING_COLUMNS, type LabelKind } from "./columns.ts";
import {
  type DatasetIndex,
  type ImagePlace,
  INDEX_JSON_MAX_IMAGES,
  INDEX_SCHEMA_VERSION,
  type IndexImage,
  indexImage,
  type Layout,
  type TensorNames,
} from "./dataset_index.ts";
import {
  type IndexArray,
  LabelColumn,
  NumberColumn,
  OptionalTextColumn,
  textArrays,
  TextColumn,
} from "./index_columns.ts";
import { type FileFacts, FileTable } from "./index_files.ts";
import type { PackageRow } from "./rows.ts";

export { type FileFacts, TENSOR_KINDS, type TensorKind } from "./index_files.ts";

/** The folder of the columnar index in a dataset. */
export const INDEX_DIR = "index";

/** Bumped when an array or header field of `index/` changes meaning or goes away. */
export const COLUMNAR_INDEX_VERSION = 1;

/** Options of {@linkcode IndexWriter}. */
export interface IndexWriterOptions {
  layout: Layout;
  /** Whether every image has flipped latents. */
  flip: boolean;
  labelFields: Readonly<Record<string, LabelKind>>;
  /** Class name → class index (class-folder datasets). */
  classToIdx?: Record<string, number>;
  /** `index.json` is made while the dataset has at most this many images. */
  jsonMaxImages?: number;
}

/** `index/header.json`. */
export interface IndexHeader {
  format: "latentforge-index";
  schema_version: number;
  layout: Layout;
  flip: boolean;
  images: number;
  files: number;
  /** Each split's images are rows `start` to `start + images` of every array. */
  splits: { name: string; start: number; images: number }[];
  /** In the order of the codes of the `bucket` array. */
  buckets: { name: string; images: number; latent_shape: number[]; tensors: TensorNames }[];
  label_fields: Record<string, LabelKind>;
  class_to_idx?: Record<string, number>;
  /** Every array of the folder (`<name>.npy`) with its dtype and shape. */
  arrays: Record<string, { dtype: string; shape: number[] }>;
}

/** What {@linkcode IndexWriter.finish} gives. */
export interface WrittenIndex {
  /** Dataset path (`index/…`) → bytes. */
  files: Record<string, Uint8Array>;
  /** `index.json`, when the dataset is small enough. */
  json: DatasetIndex | null;
}

/** Raised when the rows fed to the index contradict each other. */
export class IndexWriterError extends Error {
  override readonly name = "IndexWriterError";
}

// Label fields become file names: letters, digits, and a few separators only.
const FIELD_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/**
 * Builds the columnar index (and, for small datasets, `index.json`) from rows fed one by one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNpy } from "../format/npy.ts";
 * import type { PackageRow } from "./rows.ts";
 *
 * const conditioning = {
 *   original_size: [512, 512], crop_coords_top_left: [0, 0], crop_box: [0, 0, 512, 512],
 *   target_size: [256, 256],
 * };
 * // Only the fields the index reads matter here.
 * const rows = ["00017", "00042"].map((id) => ({
 *   id, split: "train", bucket: "256x256", labels: { category: "cat" }, image: { conditioning },
 *   flipped: null,
 * })) as unknown as PackageRow[];
 * const writer = new IndexWriter({ layout: "shards", flip: false, labelFields: { category: "text" } });
 * const file = "train/shards/256x256-00000.safetensors";
 * rows.forEach((row, i) => writer.add(row, { file, row: i, tensors: { latents: "latents" } }));
 * const { files, json } = writer.finish({
 *   files: { [file]: { sha256: "ab".repeat(32), offsets: { latents: 1024 } } },
 *   latentShapes: { "256x256": [4, 32, 32] },
 * });
 * const header = JSON.parse(new TextDecoder().decode(files["index/header.json"]));
 * assert.deepEqual(header.splits, [{ name: "train", start: 0, images: 2 }]);
 * assert.deepEqual([...decodeNpy(files["index/row.npy"]).data], [0, 1]);
 * assert.equal(json?.images[1].id, "00042");
 * ```
 */
export class IndexWriter {
  readonly #options: IndexWriterOptions;
  readonly #jsonMax: number;
  #json: IndexImage[] | null = [];
  #images = 0;
  readonly #ids = new TextColumn();
  readonly #file = new NumberColumn("<i4");
  readonly #row = new NumberColumn("<i4");
  readonly #bucket = new NumberColumn("<i4");
  readonly #conditioning: Record<string, NumberColumn> = {};
  readonly #labels: LabelColumn[];
  readonly #caption = new OptionalTextColumn("caption");
  readonly #meta = new OptionalTextColumn("meta");
  readonly #splits: IndexHeader["splits"] = [];
  readonly #buckets = new Map<
    string,
    { code: number; images: number; tensors: TensorNames; checked: TensorNames }
  >();
  readonly #files = new FileTable();

  constructor(options: IndexWriterOptions) {
    this.#options = options;
    this.#jsonMax = options.jsonMaxImages ?? INDEX_JSON_MAX_IMAGES;
    for (const [name, width] of Object.entries(CONDITIONING_COLUMNS)) {
      this.#conditioning[name] = new NumberColumn("<i4", width);
    }
    if (options.flip) this.#conditioning.crop_coords_top_left_flipped = new NumberColumn("<i4", 2);
    this.#labels = Object.entries(options.labelFields).map(([field, kind]) => {
      if (!FIELD_NAME.test(field)) {
        throw new IndexWriterError(
          `label field ${JSON.stringify(field)}: expected letters, digits, "_", "." or "-"`,
        );
      }
      return new LabelColumn(field, kind);
    });
  }

  /** Appends one image, after every image before it in the dataset's order. */
  add(row: PackageRow, place: ImagePlace): void {
    const split = this.#splitCode(row);
    const bucket = this.#bucketCode(row, place);
    this.#ids.push(row.id);
    this.#file.push(this.#files.place(place.file, split, bucket, row.id));
    this.#row.push(place.row ?? -1);
    this.#bucket.push(bucket);
    const c = row.image.conditioning;
    for (const name of Object.keys(CONDITIONING_COLUMNS) as (keyof typeof c)[]) {
      this.#conditioning[name].push(c[name]);
    }
    if (this.#options.flip) {
      if (!row.flipped) {
        throw new IndexWriterError(`image ${row.id}: expected a flipped latent, found none`);
      }
      this.#conditioning.crop_coords_top_left_flipped.push(
        row.flipped.conditioning.crop_coords_top_left,
      );
    }
    for (const column of this.#labels) column.push(row.id, row.labels[column.field]);
    this.#caption.push(row.caption);
    this.#meta.push(row.meta === undefined ? undefined : JSON.stringify(row.meta));
    this.#images++;
    // Past the limit index.json is not made, and its entries are dropped.
    if (this.#images > this.#jsonMax) this.#json = null;
    this.#json?.push(indexImage(row, place, this.#options.flip));
  }

  /**
   * The index's files (`index/header.json` and `index/<array>.npy`), and `index.json` when the
   * dataset is small enough. `files` gives the facts of every file an image was placed in;
   * `latentShapes` the latent shape (C, h, w) of each bucket.
   */
  finish({ files, latentShapes }: {
    files: Readonly<Record<string, FileFacts>>;
    latentShapes: Readonly<Record<string, number[]>>;
  }): WrittenIndex {
    const arrays: Record<string, IndexArray> = {};
    textArrays(arrays, "id", this.#ids);
    arrays.file = this.#file.array();
    arrays.row = this.#row.array();
    arrays.bucket = this.#bucket.array();
    for (const [name, column] of Object.entries(this.#conditioning)) arrays[name] = column.array();
    for (const column of this.#labels) Object.assign(arrays, column.arrays());
    Object.assign(arrays, this.#caption.arrays(), this.#meta.arrays(), this.#files.arrays(files));
    const header = this.#header(arrays, latentShapes);
    const out: Record<string, Uint8Array> = {
      [`${INDEX_DIR}/header.json`]: new TextEncoder().encode(JSON.stringify(header)),
    };
    for (const name of Object.keys(header.arrays)) {
      out[`${INDEX_DIR}/${name}.npy`] = arrays[name].bytes;
    }
    return { files: out, json: this.#jsonIndex(files, latentShapes) };
  }

  #splitCode(row: PackageRow): number {
    const last = this.#splits.at(-1);
    if (last?.name === row.split) {
      last.images++;
      return this.#splits.length - 1;
    }
    if (this.#splits.some((s) => s.name === row.split)) {
      throw new IndexWriterError(
        `image ${row.id}: split ${row.split} comes again after split ${last!.name}; ` +
          `expected each split's images together`,
      );
    }
    this.#splits.push({ name: row.split, start: this.#images, images: 1 });
    return this.#splits.length - 1;
  }

  #bucketCode(row: PackageRow, place: ImagePlace): number {
    const known = this.#buckets.get(row.bucket);
    if (!known) {
      const code = this.#buckets.size;
      this.#buckets.set(row.bucket, {
        code,
        images: 1,
        tensors: place.tensors,
        checked: place.tensors,
      });
      return code;
    }
    // The rows of one file share one names object: each new object is compared once.
    if (known.checked !== place.tensors) {
      if (JSON.stringify(known.tensors) !== JSON.stringify(place.tensors)) {
        throw new IndexWriterError(
          `image ${row.id}: bucket ${row.bucket} has tensors ${JSON.stringify(known.tensors)}, ` +
            `found ${JSON.stringify(place.tensors)}`,
        );
      }
      known.checked = place.tensors;
    }
    known.images++;
    return known.code;
  }

  #header(
    arrays: Record<string, IndexArray>,
    latentShapes: Readonly<Record<string, number[]>>,
  ): IndexHeader {
    const { layout, flip, labelFields, classToIdx } = this.#options;
    return {
      format: "latentforge-index",
      schema_version: COLUMNAR_INDEX_VERSION,
      layout,
      flip,
      images: this.#images,
      files: this.#files.size,
      splits: this.#splits,
      buckets: [...this.#buckets].map(([name, b]) => ({
        name,
        images: b.images,
        latent_shape: latentShapes[name] ?? [],
        tensors: b.tensors,
      })),
      label_fields: { ...labelFields },
      ...(classToIdx ? { class_to_idx: classToIdx } : {}),
      arrays: Object.fromEntries(
        Object.keys(arrays).sort().map((name) => {
          const { dtype, shape } = arrays[name];
          return [name, { dtype, shape }];
        }),
      ),
    };
  }

  #jsonIndex(
    files: Readonly<Record<string, FileFacts>>,
    latentShapes: Readonly<Record<string, number[]>>,
  ): DatasetIndex | null {
    if (this.#json === null) return null;
    const { layout, flip, labelFields, classToIdx } = this.#options;
    const buckets = [...this.#buckets.keys()];
    return {
      schema_version: INDEX_SCHEMA_VERSION,
      layout,
      flip,
      label_fields: { ...labelFields },
      ...(classToIdx ? { class_to_idx: classToIdx } : {}),
      buckets: Object.fromEntries(
        [...this.#buckets].sort(([a], [b]) => a < b ? -1 : 1)
          .map(([name, b]) => [name, { images: b.images, latent_shape: latentShapes[name] ?? [] }]),
      ),
      files: this.#files.json(files, this.#splits.map((s) => s.name), buckets),
      images: this.#json,
    };
  }
}

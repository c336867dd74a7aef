/**
 * The files table of the dataset index: every file that holds latents, in the order its first
 * image comes, with its split, its bucket (-1 for a split file holding several), its row count,
 * its sha256 and where its latent tensors start — so a reader finds an image's latents at
 * `offset + row × size` without parsing the file's own header.
 *
 * @module
 */
import { encodeNpy } from "../format/npy.ts";
import type { IndexFile } from "./dataset_index.ts";
import { type IndexArray, NumberColumn, textArrays, TextColumn } from "./index_columns.ts";

/** The latent tensors, in the order of the columns of `files.offsets`. */
export const TENSOR_KINDS = [
  "latents",
  "initial_latents",
  "latents_flipped",
  "initial_latents_flipped",
] as const;

/** One of the latent tensors of an image. */
export type TensorKind = (typeof TENSOR_KINDS)[number];

/** What is known of a file once it is written. */
export interface FileFacts {
  sha256: string;
  /**
   * The byte where the data of each latent tensor starts in the file, for a file whose tensors
   * lie at fixed places (safetensors holding one bucket).
   */
  offsets?: Partial<Record<TensorKind, number>>;
}

/** Raised when an image's file or a file's facts contradict the table. */
export class IndexFilesError extends Error {
  override readonly name = "IndexFilesError";
}

/**
 * The files table, grown as images are placed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const table = new FileTable();
 * assert.equal(table.place("train/latents.safetensors", 0, 0, "a"), 0);
 * assert.equal(table.place("train/latents.safetensors", 0, 1, "b"), 0);
 * const facts = { "train/latents.safetensors": { sha256: "ab".repeat(32) } };
 * const [file] = table.json(facts, ["train"], ["32x32", "64x32"]);
 * assert.deepEqual([file.rows, file.bucket], [2, null]);
 * ```
 */
export class FileTable {
  readonly #codes = new Map<string, number>();
  readonly #paths = new TextColumn();
  readonly #rows: number[] = [];
  readonly #split: number[] = [];
  readonly #bucket: number[] = [];

  /** Files so far. */
  get size(): number {
    return this.#codes.size;
  }

  /** The code of the file image `id` is in, after every image before it. */
  place(path: string, split: number, bucket: number, id: string): number {
    const code = this.#codes.get(path);
    if (code === undefined) {
      this.#codes.set(path, this.#codes.size);
      this.#paths.push(path);
      this.#rows.push(1);
      this.#split.push(split);
      this.#bucket.push(bucket);
      return this.#codes.size - 1;
    }
    if (code !== this.#codes.size - 1) {
      throw new IndexFilesError(
        `image ${id}: file ${path} comes again after other files; expected its images together`,
      );
    }
    this.#rows[code]++;
    // A split file holds every bucket of its split.
    if (this.#bucket[code] !== bucket) this.#bucket[code] = -1;
    return code;
  }

  /** The table's arrays (`files.*`), with each file's facts. */
  arrays(facts: Readonly<Record<string, FileFacts>>): Record<string, IndexArray> {
    const sha256 = new NumberColumn("|u1", 32);
    const offsets = new NumberColumn("<i8", TENSOR_KINDS.length);
    for (const path of this.#codes.keys()) {
      const f = factsOf(facts, path);
      sha256.push(
        Array.from({ length: 32 }, (_, i) => parseInt(f.sha256.slice(2 * i, 2 * i + 2), 16)),
      );
      offsets.push(TENSOR_KINDS.map((kind) => f.offsets?.[kind] ?? -1));
    }
    const out: Record<string, IndexArray> = {};
    textArrays(out, "files.path", this.#paths);
    out["files.sha256"] = sha256.array();
    out["files.offsets"] = offsets.array();
    for (
      const [name, values] of [
        ["files.rows", this.#rows],
        ["files.split", this.#split],
        ["files.bucket", this.#bucket],
      ] as const
    ) {
      const shape = [values.length];
      const bytes = encodeNpy({ dtype: "<i4", shape, data: Int32Array.from(values) });
      out[name] = { dtype: "<i4", shape, bytes };
    }
    return out;
  }

  /** The table as `index.json`'s `files`, with split and bucket names for their codes. */
  json(
    facts: Readonly<Record<string, FileFacts>>,
    splits: readonly string[],
    buckets: readonly string[],
  ): IndexFile[] {
    return [...this.#codes.keys()].map((file, i) => ({
      file,
      split: splits[this.#split[i]],
      bucket: this.#bucket[i] < 0 ? null : buckets[this.#bucket[i]],
      rows: this.#rows[i],
      sha256: factsOf(facts, file).sha256,
    }));
  }
}

function factsOf(facts: Readonly<Record<string, FileFacts>>, path: string): FileFacts {
  const f = facts[path];
  if (!f || !/^[0-9a-f]{64}$/.test(f.sha256)) {
    throw new IndexFilesError(
      `file ${path}: expected its sha256 (64 hex digits), found ${
        JSON.stringify(f?.sha256 ?? null)
      }`,
    );
  }
  return f;
}

/**
 * Where the data of each latent tensor named in `names` starts in the safetensors file at
 * `path`, read from its header; each must be float32 with `rows` rows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeSafetensors } from "../format/safetensors.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const bytes = encodeSafetensors({
 *   tensors: {
 *     latents: { dtype: "F32", shape: [2, 4], data: new Float32Array(8) },
 *     steps: { dtype: "I32", shape: [2], data: new Int32Array(2) },
 *   },
 * });
 * await Deno.writeFile(`${dir}/shard.safetensors`, bytes);
 * const offsets = await safetensorsOffsets(`${dir}/shard.safetensors`, { latents: "latents" }, 2);
 * assert.equal(offsets.latents, bytes.length - 40);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function safetensorsOffsets(
  path: string,
  names: Readonly<Partial<Record<TensorKind, string>>>,
  rows: number,
): Promise<Partial<Record<TensorKind, number>>> {
  const file = await Deno.open(path, { read: true });
  let header: Record<string, { dtype?: unknown; shape?: unknown; data_offsets?: unknown }>;
  let start: number;
  try {
    const length = new DataView((await readExactly(file, 8, path)).buffer).getBigUint64(0, true);
    if (length > 100_000_000n) {
      throw new IndexFilesError(`${path}: expected a safetensors header, found ${length} bytes`);
    }
    start = 8 + Number(length);
    header = JSON.parse(new TextDecoder().decode(await readExactly(file, Number(length), path)));
  } finally {
    file.close();
  }
  const out: Partial<Record<TensorKind, number>> = {};
  for (const kind of TENSOR_KINDS) {
    const name = names[kind];
    if (name === undefined) continue;
    const entry = header[name];
    const shape = entry?.shape as number[] | undefined;
    const offsets = entry?.data_offsets as number[] | undefined;
    if (entry?.dtype !== "F32" || shape?.[0] !== rows || !Array.isArray(offsets)) {
      throw new IndexFilesError(
        `${path}: expected a float32 tensor ${name} of ${rows} rows, found ${
          JSON.stringify(entry ?? null)
        }`,
      );
    }
    out[kind] = start + offsets[0];
  }
  return out;
}

async function readExactly(file: Deno.FsFile, n: number, path: string): Promise<Uint8Array> {
  const bytes = new Uint8Array(n);
  for (let done = 0; done < n;) {
    const got = await file.read(bytes.subarray(done));
    if (got === null) {
      throw new IndexFilesError(`${path}: expected ${n} bytes of header, found ${done}`);
    }
    done += got;
  }
  return bytes;
}

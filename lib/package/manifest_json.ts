/**
 * `manifest.json`: the dataset's provenance. The tool and schema version, the layout and its
 * buckets, the config, the models and the normalization of the latents, the counts and
 * failures, the notes on the inputs, per image its split, source path, source MD5, the action
 * key of every stage that made it, its conditioning (see image_provenance.ts), its caption and
 * other metadata when the source gave them; the class index of a class-folder dataset; the
 * reconciliation of the local copies that were adopted, and a `--limit`.
 *
 * @module
 */
import type { ImageLabels } from "../dataset/image_labels.ts";
import type { Reconciliation } from "../dataset/reconciliation.ts";
import type { ReportNotes } from "../report/html.ts";
import { imageConditioning, MANIFEST_SCHEMA_VERSION, stageKeys } from "./image_provenance.ts";
import type { ImageStages } from "./upstream_images.ts";

/** Where the text goes, piece by piece (a `StoredText`, or anything that appends). */
export interface TextSink {
  write(text: string): Promise<void>;
}

/** What `manifest.json` says before its images. */
export interface ManifestHeader {
  toolVersion: string;
  /** The config the dataset was written with, recorded as it is. */
  config: unknown;
  layout: string;
  /** How many images of the dataset each bucket holds. */
  buckets: Record<string, number>;
  /** The models' digests and the normalization's description. */
  models: Record<string, unknown>;
  /** Class name → class index (class-folder datasets). */
  classToIdx?: Record<string, number>;
  /** Images in the dataset per split. */
  counts: Record<string, number>;
  failures: { id: string; task: string; reason: string }[];
  notes: ReportNotes;
}

/** What label-split says of each image that `manifest.json` repeats. */
export interface ManifestFacts {
  /** Relative source path per id. */
  paths: Readonly<Record<string, string>>;
  labels: Readonly<Record<string, ImageLabels>>;
  /** Caption and other metadata per id, for the images that have them. */
  captions?: Readonly<Record<string, string>>;
  meta?: Readonly<Record<string, { [key: string]: unknown }>>;
}

/**
 * Writes `manifest.json` piece by piece: the header when opened, then one image at a time (every
 * image of every split, before `package.exclude`: every image is described), then the
 * reconciliation and the limit. The text is what `JSON.stringify(manifest, null, 1)` gives.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Output } from "../store/records.ts";
 *
 * let text = "";
 * const sink = { write: (t: string) => Promise.resolve(void (text += t)) };
 * const manifest = await ManifestJsonWriter.open(sink, {
 *   toolVersion: "0.1.0", config: { package: { layout: "split" } }, layout: "split",
 *   buckets: { "256x256": 1 }, models: { encoder_sha256: "e", decoder_sha256: "d" },
 *   counts: { train: 1 }, failures: [],
 *   notes: { skipped: [], upscaled: [], duplicates: [], excluded: [] },
 * });
 * const entry = (out: Output) =>
 *   ({ id: "00017", out, key: "k".repeat(64), ms: 1 });
 * await manifest.image({
 *   id: "00017",
 *   split: "train",
 *   image: {
 *     "fetch-images": entry({ objects: {}, meta: { md5: "m".repeat(32) } }),
 *     "verify-sizes": undefined, preprocess: undefined, optimize: undefined,
 *     encode: entry({ objects: {}, meta: null }),
 *   },
 *   flipped: null,
 * }, { paths: { "00017": "images/00017.png" }, labels: {} });
 * await manifest.finish({ reconciliation: null, limit: null });
 * const parsed = JSON.parse(text);
 * assert.equal(parsed.images["00017"].source_md5, "m".repeat(32));
 * assert.equal(parsed.images["00017"].keys.encode, "k".repeat(64));
 * assert.equal(parsed.images["00017"].keys.optimize, null);
 * assert.deepEqual(parsed.buckets, { "256x256": 1 });
 * ```
 */
export class ManifestJsonWriter {
  readonly #out: TextSink;
  #images = 0;

  private constructor(out: TextSink) {
    this.#out = out;
  }

  /** Writes the header and opens the images. */
  static async open(out: TextSink, header: ManifestHeader): Promise<ManifestJsonWriter> {
    const fields = [
      field("schema_version", MANIFEST_SCHEMA_VERSION),
      field("tool", { name: "latentforge", version: header.toolVersion }),
      field("layout", header.layout),
      field("buckets", header.buckets),
      field("config", header.config),
      field("models", header.models),
      ...(header.classToIdx ? [field("class_to_idx", header.classToIdx)] : []),
      field("counts", header.counts),
      field("failures", header.failures),
      field("notes", header.notes),
    ].filter((f) => f !== null);
    await out.write(`{\n${fields.join(",\n")},\n "images": {`);
    return new ManifestJsonWriter(out);
  }

  /** Writes one image's entry. */
  async image(image: ImageStages, facts: ManifestFacts): Promise<void> {
    const { id } = image;
    const entry = {
      split: image.split,
      path: facts.paths[id],
      source_md5: (image.image["fetch-images"]?.out.meta as { md5?: string } | undefined)?.md5 ??
        null,
      keys: stageKeys(image.image),
      ...imageConditioning(image, facts.labels),
      ...(facts.captions?.[id] !== undefined ? { caption: facts.captions[id] } : {}),
      ...(facts.meta?.[id] !== undefined ? { meta: facts.meta[id] } : {}),
    };
    const separator = this.#images++ === 0 ? "\n" : ",\n";
    await this.#out.write(`${separator}  ${JSON.stringify(id)}: ${indented(entry, 2)}`);
  }

  /** Closes the images and writes the rest. */
  async finish(
    { reconciliation, limit }: { reconciliation: Reconciliation | null; limit: number | null },
  ): Promise<void> {
    const rest = [field("reconciliation", reconciliation), field("limit", limit)]
      .filter((f) => f !== null);
    await this.#out.write(`${this.#images === 0 ? "}" : "\n }"},\n${rest.join(",\n")}\n}`);
  }
}

/** One top-level field as `JSON.stringify(…, null, 1)` writes it; null when it has no value. */
function field(name: string, value: unknown): string | null {
  const text = indented(value, 1);
  return text === undefined ? null : ` ${JSON.stringify(name)}: ${text}`;
}

/** `value` as JSON, indented one space a level, its lines after the first `depth` spaces in. */
function indented(value: unknown, depth: number): string | undefined {
  const text: string | undefined = JSON.stringify(value, null, 1);
  return text?.replaceAll("\n", "\n" + " ".repeat(depth));
}

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
import type { Output } from "../store/records.ts";
import { bucketHistogram, imageConditioning, MANIFEST_SCHEMA_VERSION } from "./image_provenance.ts";

/** The tasks whose action keys the provenance lists per image. */
export const PROVENANCE_STAGES = [
  "fetch-images",
  "verify-sizes",
  "preprocess",
  "encode",
  "optimize",
];

/** What `manifest.json` is made of. */
export interface ManifestSources {
  toolVersion: string;
  /** The config the dataset was written with, recorded as it is. */
  config: unknown;
  layout: string;
  flip: boolean;
  /** Image ids per split (before `package.exclude`: every image is described). */
  splits: Record<string, string[]>;
  /** Relative source path per id. */
  paths: Record<string, string>;
  /** Images in the dataset per split. */
  counts: Record<string, number>;
  failures: { id: string; task: string; reason: string }[];
  labels: Readonly<Record<string, ImageLabels>>;
  /** Class name → class index (class-folder datasets). */
  classToIdx?: Record<string, number>;
  /** Caption and other metadata per id, for the images that have them. */
  captions?: Readonly<Record<string, string>>;
  meta?: Readonly<Record<string, { [key: string]: unknown }>>;
  /** The bucket of every row of the dataset. */
  buckets: readonly string[];
  notes: ReportNotes;
  /** The models' digests and the normalization's description. */
  models: Record<string, unknown>;
  /** The action keys of each of {@link PROVENANCE_STAGES}, by item. */
  keys: Record<string, { get(id: string): string | undefined }>;
  /** Outputs of `fetch-images` (their MD5) and `preprocess` (their conditioning). */
  fetched: ReadonlyMap<string, Output>;
  preprocessed: ReadonlyMap<string, Output>;
  reconciliation: Reconciliation | null;
  limit: number | null;
}

/**
 * The text of `manifest.json`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const text = manifestJson({
 *   toolVersion: "0.1.0", config: { package: { layout: "split" } }, layout: "split", flip: false,
 *   splits: { train: ["00017"] }, paths: { "00017": "images/00017.png" }, counts: { train: 1 },
 *   failures: [], labels: {}, buckets: ["256x256"],
 *   notes: { skipped: [], upscaled: [], duplicates: [], excluded: [] },
 *   models: { encoder_sha256: "e", decoder_sha256: "d", scaling_factor: 0.18215 },
 *   keys: { encode: new Map([["00017", "k".repeat(64)]]) },
 *   fetched: new Map([["00017", { objects: {}, meta: { md5: "m".repeat(32) } }]]),
 *   preprocessed: new Map(), reconciliation: null, limit: null,
 * });
 * const manifest = JSON.parse(text);
 * assert.equal(manifest.images["00017"].source_md5, "m".repeat(32));
 * assert.equal(manifest.images["00017"].keys.encode, "k".repeat(64));
 * assert.equal(manifest.images["00017"].keys.optimize, null);
 * assert.deepEqual(manifest.buckets, { "256x256": 1 });
 * ```
 */
export function manifestJson(sources: ManifestSources): string {
  const { keys, preprocessed, labels } = sources;
  const keysOf = (item: string) =>
    Object.fromEntries(PROVENANCE_STAGES.map((t) => [t, keys[t]?.get(item) ?? null]));
  const flipKeys = sources.flip ? keysOf : null;
  const images: Record<string, unknown> = {};
  for (const [split, ids] of Object.entries(sources.splits)) {
    for (const id of [...ids].sort()) {
      images[id] = {
        split,
        path: sources.paths[id],
        source_md5: (sources.fetched.get(id)?.meta as { md5?: string } | undefined)?.md5 ?? null,
        keys: keysOf(id),
        ...imageConditioning(id, { preprocessed, labels, flipKeys }),
        ...(sources.captions?.[id] !== undefined ? { caption: sources.captions[id] } : {}),
        ...(sources.meta?.[id] !== undefined ? { meta: sources.meta[id] } : {}),
      };
    }
  }
  const manifest = {
    schema_version: MANIFEST_SCHEMA_VERSION,
    tool: { name: "latentforge", version: sources.toolVersion },
    layout: sources.layout,
    buckets: bucketHistogram(sources.buckets),
    config: sources.config,
    models: sources.models,
    ...(sources.classToIdx ? { class_to_idx: sources.classToIdx } : {}),
    counts: sources.counts,
    failures: sources.failures,
    notes: sources.notes,
    images,
    reconciliation: sources.reconciliation,
    limit: sources.limit,
  };
  return JSON.stringify(manifest, null, 1);
}

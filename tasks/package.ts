/**
 * package: the dataset a researcher opens. Per split, as `package.layout` says: `latents.npz`,
 * `latents.h5`, `latents.safetensors` (as `package.formats` chooses; with buckets, arrays per
 * bucket), or safetensors shards (`shards/<bucket>-<n>.safetensors`), or one `.npz` per image
 * (`images/<id>.npz`); and `manifest.txt` and `metrics.csv`. For the whole run: the index
 * (`index/`, and `index.json` up to 100,000 images: where each image's latents are, with its
 * conditioning and labels), `manifest.json`
 * (provenance) and `report.html`. The files are objects in the store; `out_dir` is replaced by
 * them atomically after a run and after a cache hit alike, with the facts of the run that built
 * them (report's run section, `run.json`) added then. Upscaled and byte-identical images are
 * noted, and left out when `package.exclude` says so.
 *
 * Reads: the splits and labels of `label-split`, the latents of `encode` and `optimize`, the
 * tensors and conditioning of `preprocess`, the source files of `fetch-images`, the listing of
 * `fetch-json`, and every
 * upstream action key.
 *
 * @module
 */
import {
  aggregate,
  type ItemContext,
  type Output,
  type TaskContext,
  type Upstream,
} from "../lib/dag/task.ts";
import type { KeyLookup } from "../lib/dag/item_join.ts";
import type { LabelsObject } from "../lib/dataset/image_labels.ts";
import type { Reconciliation } from "../lib/dataset/reconciliation.ts";
import { decodeItemIndex } from "../lib/dataset/item_index.ts";
import { copiesFingerprint, statedReconciliation } from "../lib/package/adopted_copies.ts";
import { labelKinds } from "../lib/package/columns.ts";
import { datasetNotes, notesLog, withoutExcluded } from "../lib/package/dataset_notes.ts";
import { fileFacts, storedNormalization } from "../lib/package/latent_facts.ts";
import { writeLayout } from "../lib/package/layout.ts";
import { manifestJson, PROVENANCE_STAGES } from "../lib/package/manifest_json.ts";
import { metricsCsv } from "../lib/package/metrics_csv.ts";
import { type PackageMeta, publishDataset } from "../lib/package/publish_dataset.ts";
import { datasetTitle, reportImages, withMeasured } from "../lib/package/report_images.ts";
import { type PackageRow, packageRows } from "../lib/package/rows.ts";
import { decodedSamples } from "../lib/package/samples.ts";
import { DEFAULT_SHARD_SIZE } from "../lib/package/shards.ts";
import { manifestText } from "../lib/package/split_manifest.ts";
import type { LatentNormalization } from "../lib/model/normalization.ts";
import { PRESETS } from "../lib/model/presets.ts";
import { renderReport, type ReportNotes } from "../lib/report/html.ts";
import { checkOutDir } from "../lib/store/out_dir.ts";
import type { Config } from "../config/schema.ts";
import type { SplitsObject } from "./label_split.ts";
import denoJson from "../deno.json" with { type: "json" };

/** Stored shards and per-image files are found again by this alias of their recipe. */
const RECIPE_ALIAS = "package-file:";

export default aggregate<Config>({
  name: "package",
  deps: [
    "optimize",
    "encode",
    "preprocess",
    "verify-sizes",
    "label-split",
    "fetch-images",
    "fetch-json",
  ],
  // Everything that shapes the data or its description: what the files state as their config
  // (ctx.keyed). Where inputs are (model, spec, labels and list locations, the dataset folder,
  // the local copies: their content is in the upstream keys, the models' in files, the copies'
  // listing in the fingerprint; mirrors), where the dataset goes (out_dir), how things run
  // (providers, threads, batch size, checkpoint cadence, download tuning, executor) and when
  // (schedule) do not: run.json says those.
  config: [
    "dataset",
    "!dataset.spec",
    "!dataset.mirrors",
    "!dataset.path",
    "!dataset.list",
    "!dataset.adopt",
    "download.verify_pixels",
    "labels",
    "!labels.source",
    "preprocess",
    "model",
    "!model.encoder",
    "!model.decoder",
    "!model.providers",
    "!model.threads",
    "optimize",
    "!optimize.checkpoint_every",
    "!optimize.batch_size",
    "package",
    "!package.out_dir",
  ],
  reads: [
    "model.decoder",
    "model.providers",
    "model.threads",
    "package.out_dir",
    "dataset.path",
    "dataset.list",
    "dataset.adopt",
  ],
  // Another kind is another dataset (on a cache shared by several).
  scope: ["dataset.kind"],
  version: "4",
  source: import.meta.url,
  describe: "write the dataset files and the report",
  // The files state both models' digests, and the report's samples are decoded by the decoder
  // (an encode-only config may name none).
  files: ({ model }) => ({
    encoder: "model.encoder",
    decoder: model.decoder ? "model.decoder" : undefined,
  }),
  // An output folder holding someone else's files is refused before any work.
  check: (config) => checkOutDir(config.package.out_dir),
  // What the files state that the config slice does not hold: a --limit, the dataset's title
  // (a folder's or list's name, when dataset.name does not give one) and the local copies.
  fingerprint: async (ctx) => ({
    limit: ctx.limit ?? null,
    title: datasetTitle(ctx.config.dataset),
    copies: await copiesFingerprint(ctx.config.dataset),
  }),
  async run(ctx, up) {
    const { store, config } = ctx;
    const inputs = await readUpstream(ctx, up);
    // With optimize.method "none" the latents are the encoder's: no metrics, no initial_*.
    const encodeOnly = config.optimize.method === "none";
    const notes = await imageNotes(ctx, inputs);
    const rowsBySplit = packageRows({
      splits: withoutExcluded(inputs.splits.splits, notes),
      paths: inputs.splits.paths,
      labels: inputs.labels.images,
      captions: inputs.labels.captions,
      meta: inputs.labels.meta,
      optimized: inputs.optimized,
      encoded: inputs.encoded,
      preprocessed: inputs.preprocessed,
      flip: config.preprocess.flip,
      encodeOnly,
    });
    const rows = [...rowsBySplit.values()].flat();

    // The latent files, each saying how its latents relate to the VAE's z.
    const normalization = storedNormalization(config.model, inputs.encoded);
    const recorded = normalization.describe();
    const written = await writeLayout(store, rowsBySplit, {
      layout: config.package.layout,
      formats: config.package.formats,
      shardSize: config.package.shard_size ?? DEFAULT_SHARD_SIZE,
      bucketed: config.preprocess.crop === "buckets",
      columns: {
        flip: config.preprocess.flip,
        labelFields: labelKinds(rows, inputs.labels.fields, inputs.labels.integer_fields),
        // Only when set, so the recipes of optimized datasets' shards stay as they were.
        ...(encodeOnly ? { encodeOnly } : {}),
      },
      ...fileFacts(recorded, {
        encoder: inputs.encoder,
        decoder: inputs.decoder,
        config: ctx.keyed,
      }),
      classToIdx: inputs.labels.class_to_idx,
      reuse: async (recipe) => (await ctx.lookupAlias(RECIPE_ALIAS + recipe))?.digest ?? null,
      signal: ctx.signal,
    });
    if (written.reused > 0) {
      ctx.log(`${written.reused} files reused from the store, ${written.built} built`);
    }

    // Per split its image list and metrics; for the dataset its index, provenance and report.
    const texts: Record<string, string> = {};
    const counts: Record<string, number> = {};
    for (const [split, splitRows] of rowsBySplit) {
      counts[split] = splitRows.length;
      texts[`${split}/manifest.txt`] = manifestText(splitRows.map((r) => r.path));
      if (!encodeOnly) texts[`${split}/metrics.csv`] = metricsCsv(splitRows);
    }
    const reconciliation = await reconciliationOf(ctx, inputs);
    const described = { rowsBySplit, counts, notes, normalization, reconciliation };
    texts["manifest.json"] = provenance(ctx, inputs, described);
    texts["report.html"] = await report(ctx, inputs, described);
    const objects: Record<string, string> = { ...written.files, ...written.indexFiles };
    for (const [name, text] of Object.entries(texts)) {
      objects[name] = await store.put(new TextEncoder().encode(text));
    }
    const aliases = Object.fromEntries(
      Object.entries(written.recipes).map(([recipe, digest]) => [RECIPE_ALIAS + recipe, digest]),
    );
    const meta = { counts, failed: inputs.failures.length, limit: ctx.limit ?? null };
    return { objects, meta, aliases };
  },
  async publish(ctx, output, run) {
    await publishDataset(ctx.store, output.objects, output.meta as unknown as PackageMeta, run, {
      outDir: ctx.config.package.out_dir,
      cacheDir: ctx.cacheDir,
      configFile: ctx.configFile,
      log: ctx.log,
      madeWith: { version: denoJson.version },
    });
  },
});

/** What package reads from upstream. */
interface Inputs {
  splits: SplitsObject;
  labels: LabelsObject;
  optimized: Map<string, Output>;
  encoded: Map<string, Output>;
  preprocessed: Map<string, Output>;
  fetched: Map<string, Output>;
  /** The folder listing of fetch-json, when the dataset came from a folder. */
  listing?: string;
  /** fetch-json's item index: every item of the spec. */
  index: string;
  failures: { id: string; task: string; reason: string }[];
  /** The models' digests: the encoder as optimize used it (else encode), and as encode did. */
  encoder: string;
  encodeEncoder: string;
  /** As optimize used it, else as this task has it; null when the config names none. */
  decoder: string | null;
  /** The action keys of the stages manifest.json lists per image. */
  keys: Record<string, KeyLookup>;
}

/** Which images: those of every split that were optimized, less what package.exclude drops. */
async function imageNotes(ctx: TaskContext<Config>, inputs: Inputs) {
  const { config } = ctx;
  const notes = await datasetNotes(ctx.store, {
    listing: inputs.listing,
    splits: inputs.splits.splits,
    optimized: inputs.optimized,
    fetched: inputs.fetched,
    preprocessed: inputs.preprocessed,
    size: config.preprocess.size,
    crop: config.preprocess.crop,
    exclude: config.package.exclude,
  });
  // Classes some splits lack were found by label-split; the notes carry them to the report.
  if (inputs.labels.classes_missing) notes.classes_missing = inputs.labels.classes_missing;
  for (const line of notesLog(notes)) ctx.log(line);
  return notes;
}

/** The reconciliation of the adopted copies against the listing, from recorded outputs. */
function reconciliationOf(
  ctx: TaskContext<Config> & Pick<ItemContext<Config>, "lookupAlias">,
  inputs: Inputs,
) {
  return statedReconciliation(ctx.config.dataset, {
    spec: async () => decodeItemIndex(await ctx.store.get(inputs.index)).items,
    limit: ctx.limit,
    fetched: inputs.fetched,
    stored: async (item) => item.md5 !== null && await ctx.lookupAlias(`md5:${item.md5}`) !== null,
    signal: ctx.signal,
  });
}

async function readUpstream(ctx: TaskContext<Config>, up: Upstream): Promise<Inputs> {
  const split = up.aggregate("label-split");
  const models = up.taskInputs("optimize");
  const keys: Record<string, Map<string, string>> = {};
  const outputs = async (task: string) => {
    const out = new Map<string, Output>();
    const byId = keys[task] = new Map<string, string>();
    for await (const e of up.items(task)) {
      out.set(e.id, e.out);
      byId.set(e.id, e.key);
    }
    return out;
  };
  return {
    splits: await ctx.store.getJson<SplitsObject>(split.objects.splits),
    labels: await ctx.store.getJson<LabelsObject>(split.objects.labels),
    optimized: await outputs("optimize"),
    encoded: await outputs("encode"),
    preprocessed: await outputs("preprocess"),
    fetched: await outputs("fetch-images"),
    listing: up.aggregate("fetch-json").objects.listing,
    index: up.aggregate("fetch-json").objects.index,
    failures: [...up.failures("optimize")].map(([id, f]) => ({ id, ...f }))
      .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    encoder: models.encoder ?? up.taskInputs("encode").encoder,
    encodeEncoder: up.taskInputs("encode").encoder,
    decoder: models.decoder ?? ctx.files.decoder?.digest ?? null,
    keys: Object.fromEntries(PROVENANCE_STAGES.map((t) => [t, keys[t]])),
  };
}

/** What the dataset's descriptions are made of, besides the upstream outputs. */
interface Described {
  rowsBySplit: Map<string, PackageRow[]>;
  /** Images per split. */
  counts: Record<string, number>;
  notes: ReportNotes;
  normalization: LatentNormalization;
  reconciliation: Reconciliation | null;
}

/** manifest.json: where every image came from and what made its latents. */
function provenance(ctx: TaskContext<Config>, inputs: Inputs, d: Described): string {
  const { config } = ctx;
  return manifestJson({
    toolVersion: denoJson.version,
    config: ctx.keyed,
    layout: config.package.layout,
    flip: config.preprocess.flip,
    splits: inputs.splits.splits,
    paths: inputs.splits.paths,
    counts: d.counts,
    failures: inputs.failures,
    labels: inputs.labels.images,
    classToIdx: inputs.labels.class_to_idx,
    captions: inputs.labels.captions,
    meta: inputs.labels.meta,
    buckets: [...d.rowsBySplit.values()].flat().map((r) => r.bucket),
    notes: d.notes,
    models: {
      encoder_sha256: inputs.encodeEncoder,
      decoder_sha256: inputs.decoder,
      ...d.normalization.describe(),
    },
    keys: inputs.keys,
    fetched: inputs.fetched,
    preprocessed: inputs.preprocessed,
    reconciliation: d.reconciliation,
    limit: ctx.limit ?? null,
  });
}

/** report.html: the numbers of every image and a few decoded samples. */
async function report(ctx: TaskContext<Config>, inputs: Inputs, d: Described): Promise<string> {
  const { rowsBySplit, counts, notes, normalization, reconciliation } = d;
  const { store, config } = ctx;
  const images = await reportImages(store, rowsBySplit, {
    optimized: inputs.optimized,
    bucketed: config.preprocess.crop === "buckets",
  });
  // Without a decoder there is nothing to decode the samples with.
  const samples = inputs.decoder === null ? [] : await decodedSamples(
    store,
    images.map((i) => i.id),
    {
      count: config.package.samples,
      decoder: store.path(inputs.decoder),
      providers: config.model.providers,
      threads: config.model.threads,
      float16Overflow: config.model.preset && PRESETS[config.model.preset].fp16Overflow,
      inputRange: config.model.input_range,
      normalization,
      preprocessed: inputs.preprocessed,
      encoded: inputs.encoded,
      optimized: inputs.optimized,
    },
  );
  return renderReport({
    title: datasetTitle(config.dataset),
    toolVersion: denoJson.version,
    models: {
      encoder: inputs.encodeEncoder,
      decoder: inputs.decoder,
      preset: config.model.preset ?? null,
      normalization: normalization.describe(),
    },
    splits: Object.entries(counts).map(([name, count]) => ({ name, count })),
    // An encode-only dataset shows its encoder's reconstruction quality on the samples.
    images: withMeasured(images, samples),
    failures: inputs.failures,
    samples,
    config: ctx.keyed,
    notes,
    reconciliation,
  });
}

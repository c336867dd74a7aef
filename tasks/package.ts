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
 * `fetch-json`, and the action key of every item of each stage — the per-item records as streams
 * in id order (see lib/package/describe_images.ts and dataset_rows.ts), never all held at once.
 *
 * @module
 */
import { aggregate, type ItemContext, type TaskContext, type Upstream } from "../lib/dag/task.ts";
import type { LabelsObject } from "../lib/dataset/image_labels.ts";
import { decodeItemIndex } from "../lib/dataset/item_index.ts";
import { copiesFingerprint, statedReconciliation } from "../lib/package/adopted_copies.ts";
import { labelKinds } from "../lib/package/columns.ts";
import { notesLog } from "../lib/package/dataset_notes.ts";
import { describeImages, type ImageDescriptions } from "../lib/package/describe_images.ts";
import { fileFacts, storedNormalization } from "../lib/package/latent_facts.ts";
import { writeLayout } from "../lib/package/layout.ts";
import { type PackageMeta, publishDataset } from "../lib/package/publish_dataset.ts";
import { datasetTitle, tallyRow } from "../lib/package/report_images.ts";
import { datasetRows } from "../lib/package/dataset_rows.ts";
import type { PackageRow, RowFacts } from "../lib/package/rows.ts";
import { decodedSamples } from "../lib/package/samples.ts";
import { DEFAULT_SHARD_SIZE } from "../lib/package/shards.ts";
import { SplitTexts } from "../lib/package/split_texts.ts";
import { PROVENANCE_STAGES, type StageOutputs } from "../lib/package/upstream_images.ts";
import type { LatentNormalization } from "../lib/model/normalization.ts";
import { PRESETS } from "../lib/model/presets.ts";
import { renderReport } from "../lib/report/html.ts";
import { ImageTally } from "../lib/report/image_tally.ts";
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
    const { store } = ctx;
    const inputs = await readUpstream(ctx, up);
    const described = await describe(ctx, inputs);
    const { written, texts, tally } = await writeRows(ctx, inputs, described);
    if (written.reused > 0) {
      ctx.log(`${written.reused} files reused from the store, ${written.built} built`);
    }
    const html = await report(ctx, inputs, described, tally);
    const objects: Record<string, string> = {
      ...written.files,
      ...written.indexFiles,
      ...texts,
      "manifest.json": described.manifest,
      "report.html": await store.put(new TextEncoder().encode(html)),
    };
    const aliases = Object.fromEntries(
      Object.entries(written.recipes).map(([recipe, digest]) => [RECIPE_ALIAS + recipe, digest]),
    );
    const meta = {
      counts: described.counts,
      failed: inputs.failures.length,
      limit: ctx.limit ?? null,
    };
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

/** What package's run is given: a task's context, and the store's aliases. */
type PackageContext = TaskContext<Config> & Pick<ItemContext<Config>, "lookupAlias">;

/** What package reads from upstream. */
interface Inputs {
  splits: SplitsObject;
  labels: LabelsObject;
  /** The recorded items of every stage, read in id order or by id. */
  outputs: StageOutputs;
  /** The shape of encode's first latent, when it made any. */
  latentShape: number[] | undefined;
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
}

/** The description of the images, and how the latents relate to the VAE's z. */
interface Described extends ImageDescriptions {
  normalization: LatentNormalization;
  facts: RowFacts;
}

/** manifest.json stored and the rows found (see describe_images.ts), the notes logged. */
async function describe(ctx: PackageContext, inputs: Inputs): Promise<Described> {
  const { config } = ctx;
  const normalization = storedNormalization(config.model, inputs.latentShape);
  const facts = {
    paths: inputs.splits.paths,
    labels: inputs.labels.images,
    captions: inputs.labels.captions,
    meta: inputs.labels.meta,
    flip: config.preprocess.flip,
    // With optimize.method "none" the latents are the encoder's: no metrics, no initial_*.
    encodeOnly: config.optimize.method === "none",
  };
  const described = await describeImages(ctx.store, {
    splits: inputs.splits.splits,
    facts,
    outputs: inputs.outputs,
    notes: {
      listing: inputs.listing,
      size: config.preprocess.size,
      crop: config.preprocess.crop,
      exclude: config.package.exclude,
    },
    classesMissing: inputs.labels.classes_missing,
    header: {
      toolVersion: denoJson.version,
      config: ctx.keyed,
      layout: config.package.layout,
      models: {
        encoder_sha256: inputs.encodeEncoder,
        decoder_sha256: inputs.decoder,
        ...normalization.describe(),
      },
      classToIdx: inputs.labels.class_to_idx,
      failures: inputs.failures,
    },
    reconciliation: () => reconciliationOf(ctx, inputs),
    limit: ctx.limit ?? null,
    signal: ctx.signal,
  });
  for (const line of notesLog(described.notes)) ctx.log(line);
  return { ...described, normalization, facts };
}

/**
 * The rows made as the latent files are written, each one also going into its split's
 * manifest.txt and metrics.csv and into the report's tally as it passes.
 */
async function writeRows(ctx: PackageContext, inputs: Inputs, described: Described) {
  const { store, config } = ctx;
  const { facts, ids } = described;
  const bucketed = config.preprocess.crop === "buckets";
  let expected = 0;
  for (const n of Object.values(described.counts)) expected += n;
  const tally = new ImageTally({
    expected,
    // Without a decoder there is nothing to decode the samples with.
    samples: inputs.decoder === null ? 0 : config.package.samples,
  });
  const texts: Record<string, string> = {};
  const open: SplitTexts[] = [];
  const watch = async (split: string) => {
    const files = await SplitTexts.open(store, split, { metrics: !facts.encodeOnly });
    open.push(files);
    return {
      row: async (row: PackageRow) => {
        await files.add(row);
        await tallyRow(store, tally, row, { bucketed });
      },
      end: async () => {
        Object.assign(texts, await files.finish());
        open.splice(open.indexOf(files), 1);
      },
    };
  };
  function* labelled() {
    for (const groups of ids.values()) {
      for (const group of groups.values()) {
        for (const id of group) yield { labels: facts.labels[id] ?? {} };
      }
    }
  }
  try {
    const written = await writeLayout(
      store,
      datasetRows(inputs.outputs, ids, facts, {
        watch,
        tempPath: (hint) => store.tempPath(hint),
      }),
      {
        layout: config.package.layout,
        formats: config.package.formats,
        shardSize: config.package.shard_size ?? DEFAULT_SHARD_SIZE,
        bucketed,
        columns: {
          flip: facts.flip,
          labelFields: labelKinds(labelled(), inputs.labels.fields, inputs.labels.integer_fields),
          // Only when set, so the recipes of optimized datasets' shards stay as they were.
          ...(facts.encodeOnly ? { encodeOnly: true } : {}),
        },
        // The files say how their latents relate to the VAE's z.
        ...fileFacts(described.normalization.describe(), {
          encoder: inputs.encoder,
          decoder: inputs.decoder,
          config: ctx.keyed,
        }),
        classToIdx: inputs.labels.class_to_idx,
        reuse: async (recipe) => (await ctx.lookupAlias(RECIPE_ALIAS + recipe))?.digest ?? null,
        signal: ctx.signal,
      },
    );
    return { written, texts, tally };
  } finally {
    // Texts of a split the layout did not finish are no one's; an error is the run's.
    for (const files of open) await files.discard();
  }
}

/** The reconciliation of the adopted copies against the listing, from recorded outputs. */
function reconciliationOf(ctx: PackageContext, inputs: Inputs) {
  return statedReconciliation(ctx.config.dataset, {
    spec: async () => decodeItemIndex(await ctx.store.get(inputs.index)).items,
    limit: ctx.limit,
    fetched: inputs.outputs["fetch-images"],
    stored: async (item) => item.md5 !== null && await ctx.lookupAlias(`md5:${item.md5}`) !== null,
    signal: ctx.signal,
  });
}

async function readUpstream(ctx: TaskContext<Config>, up: Upstream): Promise<Inputs> {
  const split = up.aggregate("label-split");
  const models = up.taskInputs("optimize");
  const outputs = Object.fromEntries(
    PROVENANCE_STAGES.map((stage) => [stage, up.items(stage)]),
  ) as unknown as StageOutputs;
  let latentShape: number[] | undefined;
  for await (const first of outputs.encode) {
    latentShape = (first.out.meta as { shape?: number[] } | null)?.shape;
    break;
  }
  return {
    splits: await ctx.store.getJson<SplitsObject>(split.objects.splits),
    labels: await ctx.store.getJson<LabelsObject>(split.objects.labels),
    outputs,
    latentShape,
    listing: up.aggregate("fetch-json").objects.listing,
    index: up.aggregate("fetch-json").objects.index,
    failures: [...up.failures("optimize")].map(([id, f]) => ({ id, ...f }))
      .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    encoder: models.encoder ?? up.taskInputs("encode").encoder,
    encodeEncoder: up.taskInputs("encode").encoder,
    decoder: models.decoder ?? ctx.files.decoder?.digest ?? null,
  };
}

/** report.html: the figures of every image and a few decoded samples. */
async function report(
  ctx: TaskContext<Config>,
  inputs: Inputs,
  d: Described,
  tally: ImageTally,
): Promise<string> {
  const { counts, notes, normalization, reconciliation } = d;
  const { store, config } = ctx;
  const samples = inputs.decoder === null ? [] : await decodedSamples(store, tally.sampleIds, {
    count: config.package.samples,
    decoder: store.path(inputs.decoder),
    providers: config.model.providers,
    threads: config.model.threads,
    float16Overflow: config.model.preset && PRESETS[config.model.preset].fp16Overflow,
    inputRange: config.model.input_range,
    normalization,
    output: async (stage, id) => (await inputs.outputs[stage].get(id))?.out,
  });
  // An encode-only dataset shows its encoder's reconstruction quality on the samples.
  tally.measure(samples);
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
    images: tally,
    failures: inputs.failures,
    samples,
    config: ctx.keyed,
    notes,
    reconciliation,
  });
}

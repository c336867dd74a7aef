/**
 * package: the dataset a researcher opens. Per split, as `package.layout` says: `latents.npz`,
 * `latents.h5`, `latents.safetensors` (as `package.formats` chooses; with buckets, arrays per
 * bucket), or safetensors shards (`shards/<bucket>-<n>.safetensors`), or one `.npz` per image
 * (`images/<id>.npz`); and `manifest.txt` and `metrics.csv`. For the whole run: `index.json`
 * (where each image's latents are, with its conditioning and labels), `manifest.json`
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
import { aggregate, type Upstream } from "../lib/dag/task.ts";
import { decodeNpy } from "../lib/format/npy.ts";
import { tensorToPng } from "../lib/image/tensor_png.ts";
import type { LabelsObject } from "../lib/dataset/image_labels.ts";
import { labelKinds } from "../lib/package/columns.ts";
import {
  bucketHistogram,
  imageConditioning,
  MANIFEST_SCHEMA_VERSION,
} from "../lib/package/image_provenance.ts";
import { writeLayout } from "../lib/package/layout.ts";
import { type OptimizeMetrics, type PackageRow, packageRows } from "../lib/package/rows.ts";
import { DEFAULT_SHARD_SIZE } from "../lib/package/shards.ts";
import { ModelSession } from "../lib/model/vae.ts";
import { LatentNormalization } from "../lib/model/normalization.ts";
import { PRESETS } from "../lib/model/presets.ts";
import { inputNotes } from "../lib/dataset/input_notes.ts";
import { renderReport, type ReportData, type ReportNotes } from "../lib/report/html.ts";
import { withRunFiles } from "../lib/report/run_files.ts";
import { sha256Hex } from "../lib/store/canonical.ts";
import { adoptedCopies, reconciliationKey } from "../lib/dataset/reconciliation.ts";
import { checkOutDir, publishDirectory } from "../lib/store/publish.ts";
import type { ObjectStore } from "../lib/store/objects.ts";
import type { Config } from "../config/schema.ts";
import type { SplitsObject } from "./label_split.ts";
import denoJson from "../deno.json" with { type: "json" };
import { basename, resolve } from "node:path";

/** The tasks whose action keys the provenance lists per image. */
const STAGES = ["fetch-images", "verify-sizes", "preprocess", "encode", "optimize"];

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
  // Everything that shapes the data or its description, which the files record as their
  // config. Where inputs are (model, spec and labels locations: their content is in the
  // upstream keys; mirrors), how things run (providers, threads, download tuning, executor)
  // and when (schedule) do not.
  config: [
    "dataset",
    "!dataset.spec",
    "!dataset.mirrors",
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
    // out_dir too: the files record the config they were written with.
    "package",
  ],
  reads: ["model.providers", "model.threads"],
  version: "3",
  source: import.meta.url,
  describe: "write the dataset files and the report",
  // An output folder holding someone else's files is refused before any work.
  check: (config) => checkOutDir(config.package.out_dir),
  // manifest.json records a --limit and the reconciliation of dataset.adopt's copies (which
  // fetch-images keeps in the cache), so both are part of the action's key.
  fingerprint: async (ctx) => ({
    limit: ctx.limit ?? null,
    adopted: hashOrNull(reconciliationKey(await adoptedCopies(ctx.cacheDir, ctx.config))),
  }),
  async run(ctx, up) {
    const { store, config } = ctx;
    const split = up.aggregate("label-split");
    const splits = await store.getJson<SplitsObject>(split.objects.splits);
    const labels = await store.getJson<LabelsObject>(split.objects.labels);
    const optimized = up.items("optimize");
    const failures = [...up.failures("optimize")].map(([id, f]) => ({ id, ...f }))
      .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    const models = up.taskInputs("optimize");
    const notes = await noteInputs(ctx.store, up, config, splits);
    for (const line of notesLog(notes)) ctx.log(line);
    const excluded = new Set(notes.excluded.map((e) => e.id));
    const kept = Object.fromEntries(
      Object.entries(splits.splits).map((
        [name, ids],
      ) => [name, ids.filter((id) => !excluded.has(id))]),
    );
    const flip = config.preprocess.flip;
    const rowsBySplit = packageRows({
      splits: kept,
      paths: splits.paths,
      labels: labels.images,
      optimized,
      encoded: up.items("encode"),
      preprocessed: up.items("preprocess"),
      flip,
    });
    const allRows = [...rowsBySplit.values()].flat();
    const encoderDigest = models.encoder ?? up.taskInputs("encode").encoder;
    // How the stored latents relate to the VAE's z: every file and the manifest say it.
    const normalization = storedNormalization(config, up.items("encode"));
    const recorded = normalization.describe();
    const asText = (v: number | number[] | string) => typeof v === "string" ? v : JSON.stringify(v);
    const written = await writeLayout(store, rowsBySplit, {
      layout: config.package.layout,
      formats: config.package.formats,
      shardSize: config.package.shard_size ?? DEFAULT_SHARD_SIZE,
      bucketed: config.preprocess.crop === "buckets",
      columns: { flip, labelFields: labelKinds(allRows, labels.fields) },
      attributes: {
        ...Object.fromEntries(
          Object.entries(recorded).map(([k, v]) => [k, Array.isArray(v) ? asText(v) : v]),
        ),
        encoder_sha256: encoderDigest,
        decoder_sha256: models.decoder,
        config: JSON.stringify(config),
      },
      // What changes a shard's latents; the rest of the config stays in manifest.json.
      npzExtras: npzNormalization(recorded),
      shardContext: {
        ...Object.fromEntries(Object.entries(recorded).map(([k, v]) => [k, asText(v)])),
        encoder_sha256: encoderDigest,
        decoder_sha256: models.decoder,
      },
      reuse: async (recipe) => (await ctx.lookupAlias(RECIPE_ALIAS + recipe))?.digest ?? null,
      signal: ctx.signal,
    });
    if (written.reused > 0) {
      ctx.log(`${written.reused} files reused from the store, ${written.built} built`);
    }
    const files: Record<string, Uint8Array> = {};
    const counts: Record<string, number> = {};
    const images: ReportData["images"] = [];
    for (const [split, rows] of rowsBySplit) {
      counts[split] = rows.length;
      files[`${split}/manifest.txt`] = text(rows.map((r) => manifestLine(r.path)).join(""));
      files[`${split}/metrics.csv`] = text(metricsCsv(rows));
      for (const row of rows) {
        const m = row.image.metrics;
        const curve = await store.getJson<
          { steps: number[]; losses: number[]; passes: number[]; psnr: number[] }
        >(
          optimized.get(row.id)!.objects.curve,
        );
        images.push({
          id: row.id,
          split,
          psnrInitial: m.psnr_initial,
          psnrFinal: m.psnr_final,
          ssimInitial: m.ssim_initial,
          ssimFinal: m.ssim_final,
          lossInitial: m.loss_initial,
          lossFinal: m.loss_final,
          steps: m.steps,
          stopReason: m.stop,
          lossCurve: curve.steps.map((s, k) => [s, curve.losses[k]] as const),
          passes: m.passes,
          psnrCurve: curve.passes.map((p, k) => [p, curve.psnr[k]] as const),
          bucket: config.preprocess.crop === "buckets" ? row.bucket : undefined,
        });
      }
    }
    files["index.json"] = text(JSON.stringify(written.index));
    const reconciliation = await adoptedCopies(ctx.cacheDir, config);
    files["manifest.json"] = text(
      JSON.stringify(
        {
          ...provenance(up, config, splits, counts, failures, labels, allRows, notes, recorded),
          reconciliation,
          limit: ctx.limit ?? null,
        },
        null,
        1,
      ),
    );
    files["report.html"] = text(renderReport({
      title: datasetName(config),
      toolVersion: denoJson.version,
      splits: Object.entries(counts).map(([name, count]) => ({ name, count })),
      images,
      failures,
      samples: await samples(
        ctx.store,
        up,
        images.map((i) => i.id),
        config,
        models.decoder,
        normalization,
      ),
      config,
      notes,
      reconciliation,
    }));
    const objects: Record<string, string> = { ...written.files };
    for (const [name, bytes] of Object.entries(files)) objects[name] = await store.put(bytes);
    const aliases = Object.fromEntries(
      Object.entries(written.recipes).map(([recipe, digest]) => [RECIPE_ALIAS + recipe, digest]),
    );
    return {
      objects,
      meta: { counts, failed: failures.length, limit: ctx.limit ?? null },
      aliases,
    };
  },
  async publish(ctx, output, run) {
    const objects = await withRunFiles(ctx.store, output.objects, run);
    const meta = output.meta as { counts: Record<string, number>; failed: number; limit?: number };
    const images = Object.values(meta.counts).reduce((a, b) => a + b, 0);
    // A partial dataset never replaces a complete one (it goes beside it).
    const partial = typeof meta.limit === "number"
      ? `--limit ${meta.limit}`
      : images === 0 && meta.failed > 0
      ? `every item failed (${meta.failed})`
      : undefined;
    const r = await publishDirectory(ctx.store, objects, ctx.config.package.out_dir, {
      cacheDir: ctx.cacheDir,
      configFile: ctx.configFile,
      partial,
      images,
    });
    if (r.keptComplete) {
      ctx.log(
        `${r.keptComplete} holds a complete dataset, kept as it is; this run's partial dataset ` +
          `(${partial}) is in ${r.dir}`,
      );
    } else if (r.repaired.length) {
      ctx.log(`${r.dir}: rewrote ${r.repaired.join(", ")} (changed since published)`);
    }
  },
});

/**
 * One line of manifest.txt: the path, with a backslash, carriage return or line feed written as
 * `\\`, `\r`, `\n`, so every image is exactly one line whatever its file name.
 */
function manifestLine(path: string): string {
  return path.replace(/[\\\r\n]/g, (c) => c === "\\" ? "\\\\" : c === "\r" ? "\\r" : "\\n") + "\n";
}

/** A CSV field quoted as RFC 4180 asks when it holds a comma, a quote or a line break. */
function csvField(value: string | number): string {
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** One row per optimized item: each image, and with flips its `<id>#flip` item too. */
function metricsCsv(rows: readonly PackageRow[]): string {
  const header =
    "id,bucket,loss_initial,loss_final,psnr_initial,psnr_final,ssim_initial,ssim_final,steps,passes,stop,provider";
  const line = (id: string, m: OptimizeMetrics, bucket: string) =>
    [
      id,
      bucket,
      m.loss_initial,
      m.loss_final,
      m.psnr_initial,
      m.psnr_final,
      m.ssim_initial,
      m.ssim_final,
      m.steps,
      m.passes,
      m.stop,
      m.provider,
    ].map(csvField).join(",");
  const lines = rows.flatMap((r) => [
    line(r.id, r.image.metrics, r.bucket),
    ...(r.flipped ? [line(r.flipped.item, r.flipped.metrics, r.bucket)] : []),
  ]);
  return [header, ...lines].join("\n") + "\n";
}

function provenance(
  up: Upstream,
  config: Config,
  splits: SplitsObject,
  counts: Record<string, number>,
  failures: { id: string; task: string; reason: string }[],
  labels: LabelsObject,
  rows: readonly PackageRow[],
  notes: ReportNotes,
  normalization: Record<string, unknown>,
) {
  const fetched = up.items("fetch-images");
  const keys = Object.fromEntries(STAGES.map((t) => [t, up.keys(t)]));
  const keysOf = (item: string) =>
    Object.fromEntries(STAGES.map((t) => [t, keys[t].get(item) ?? null]));
  const preprocessed = up.items("preprocess");
  const flipKeys = config.preprocess.flip ? keysOf : null;
  const images: Record<string, unknown> = {};
  for (const [split, ids] of Object.entries(splits.splits)) {
    for (const id of [...ids].sort()) {
      images[id] = {
        split,
        path: splits.paths[id],
        source_md5: (fetched.get(id)?.meta as { md5?: string } | undefined)?.md5 ?? null,
        keys: keysOf(id),
        ...imageConditioning(id, { preprocessed, labels: labels.images, flipKeys }),
      };
    }
  }
  return {
    schema_version: MANIFEST_SCHEMA_VERSION,
    tool: { name: "latentforge", version: denoJson.version },
    layout: config.package.layout,
    buckets: bucketHistogram(rows.map((r) => r.bucket)),
    config,
    models: {
      encoder_sha256: up.taskInputs("encode").encoder,
      decoder_sha256: up.taskInputs("optimize").decoder,
      ...normalization,
    },
    counts,
    failures,
    notes,
    images,
  };
}

/** The report's title: `dataset.name`, else what the source is called. */
function datasetName(config: Config): string {
  const d = config.dataset;
  if (d.name) return d.name;
  if (d.kind === "ffhq") return "FFHQ";
  if (d.kind === "folder") return basename(resolve(d.path));
  return basename(d.list.path ?? new URL(d.list.url!).pathname).replace(/\.[^.]*$/, "");
}

/** Files the folder listing skipped, upscaled and duplicate images, and what is left out. */
async function noteInputs(
  store: ObjectStore,
  up: Upstream,
  config: Config,
  splits: SplitsObject,
): Promise<ReportNotes> {
  const listing = up.aggregate("fetch-json").objects.listing;
  const { skipped } = listing
    ? await store.getJson<{ skipped: ReportNotes["skipped"] }>(listing)
    : { skipped: [] };
  const optimized = up.items("optimize");
  const fetched = up.items("fetch-images");
  const tensors = up.items("preprocess");
  const ids = [...new Set(Object.values(splits.splits).flat())].filter((id) => optimized.has(id))
    .sort();
  const noted = inputNotes(
    ids.map((id) => ({
      id,
      md5: (fetched.get(id)?.meta as { md5?: string } | undefined)?.md5 ?? null,
      sourceSize:
        (tensors.get(id)?.meta as { source_size?: [number, number] } | undefined)?.source_size ??
          null,
      targetSize:
        (tensors.get(id)?.meta as { target_size?: [number, number] } | undefined)?.target_size ??
          null,
    })),
    { size: config.preprocess.size, crop: config.preprocess.crop, exclude: config.package.exclude },
  );
  return { skipped, ...noted };
}

function notesLog(notes: ReportNotes): string[] {
  const names = (list: string[]) =>
    list.slice(0, 20).join(", ") + (list.length > 20 ? `, … (${list.length - 20} more)` : "");
  const lines: string[] = [];
  const n = notes.upscaled.length;
  if (n) {
    lines.push(
      `${n} ${n === 1 ? "image is" : "images are"} upscaled more than 2×: ${
        names(notes.upscaled.map((u) => `${u.id} ${u.width}×${u.height} ${u.factor.toFixed(1)}×`))
      }`,
    );
  }
  const g = notes.duplicates.length;
  if (g) {
    lines.push(
      `${g} ${g === 1 ? "group" : "groups"} of byte-identical images: ${
        names(notes.duplicates.map((d) => d.join(" = ")))
      }`,
    );
  }
  if (notes.excluded.length) {
    lines.push(
      `left out of the dataset (package.exclude): ${
        names(notes.excluded.map((e) => `${e.id} (${e.reason})`))
      }`,
    );
  }
  return lines;
}

/** Eight images spread over the dataset: original, decoded encoder latent, decoded optimum. */
async function samples(
  store: ObjectStore,
  up: Upstream,
  ids: string[],
  config: Config,
  decoderDigest: string,
  normalization: LatentNormalization,
): Promise<ReportData["samples"]> {
  const count = Math.min(config.package.samples, ids.length);
  if (count === 0) return [];
  const picked = Array.from({ length: count }, (_, i) => ids[Math.floor(i * ids.length / count)]);
  const decoder = await ModelSession.open(store.path(decoderDigest), "decoder", {
    providers: config.model.providers,
    threads: config.model.threads,
    log: () => {},
  }, { float16Overflow: config.model.preset && PRESETS[config.model.preset].fp16Overflow });
  const decode = async (digest: string) => {
    const latent = decodeNpy(await store.get(digest));
    // Latents are stored normalized; the decoder takes z.
    const z = normalization.denormalize(
      latent.data as Float32Array,
      latent.shape[2] * latent.shape[3],
    );
    const image = await decoder.run(z, latent.shape);
    return await tensorToPng(image.data, image.dims, config.model.input_range);
  };
  // The preprocessed tensor holds exactly the pixels the encoder saw.
  const original = async (digest: string) => {
    const tensor = decodeNpy(await store.get(digest));
    return await tensorToPng(tensor.data as Float32Array, tensor.shape, config.model.input_range);
  };
  const out: ReportData["samples"] = [];
  for (const id of picked) {
    out.push({
      id,
      original: await original(up.items("preprocess").get(id)!.objects.tensor),
      initial: await decode(up.items("encode").get(id)!.objects.latent),
      optimized: await decode(up.items("optimize").get(id)!.objects.latent),
    });
  }
  await decoder.session.release();
  return out;
}

/** The normalization of the stored latents, with the channel count encode recorded. */
function storedNormalization(
  config: Config,
  encoded: Map<string, { meta: unknown }>,
): LatentNormalization {
  const first = encoded.values().next().value;
  const shape = (first?.meta as { shape?: number[] } | undefined)?.shape;
  const channels = shape?.[1] ??
    (config.model.preset ? PRESETS[config.model.preset].latentChannels : undefined) ??
    config.model.latents_mean?.length ?? 0;
  return LatentNormalization.of(channels, config.model);
}

/** The normalization as small arrays beside the latents (npz has no attributes). */
function npzNormalization(recorded: Record<string, number | number[] | string>) {
  return Object.fromEntries(
    Object.entries(recorded).map(([k, v]) => [
      k,
      typeof v === "string"
        ? { dtype: "<U" as const, shape: [], data: [v] }
        : Array.isArray(v)
        ? { dtype: "<f4" as const, shape: [v.length], data: Float32Array.from(v) }
        : { dtype: "<f8" as const, shape: [], data: Float64Array.from([v]) },
    ]),
  );
}

function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function hashOrNull(text: string | null): string | null {
  return text === null ? null : sha256Hex(text);
}

/**
 * package: the dataset a researcher opens. Per split: `latents.npz`, `latents.h5`,
 * `latents.safetensors` (as `package.formats` chooses), `manifest.txt` and `metrics.csv`;
 * for the whole run: `manifest.json` (provenance) and `report.html`. The files are objects in
 * the store; `out_dir` is replaced by them atomically after a run and after a cache hit alike.
 *
 * Reads: the splits of `label-split`, the latents of `encode` and `optimize`, the tensors of
 * `preprocess`, the source files of `fetch-images`, and every upstream action key.
 *
 * @module
 */
import { aggregate, type Output, type Upstream } from "../lib/dag/task.ts";
import { decodeNpy, type NpyArray } from "../lib/format/npy.ts";
import { encodeNpz } from "../lib/format/npz.ts";
import { encodeHdf5 } from "../lib/format/hdf5.ts";
import { encodeSafetensors } from "../lib/format/safetensors.ts";
import { tensorToPng } from "../lib/image/tensor_png.ts";
import { ModelSession } from "../lib/model/vae.ts";
import { renderReport, type ReportData } from "../lib/report/html.ts";
import { publishDirectory } from "../lib/store/publish.ts";
import type { ObjectStore } from "../lib/store/objects.ts";
import type { Config } from "../config/schema.ts";
import type { SplitsObject } from "./label_split.ts";
import denoJson from "../deno.json" with { type: "json" };

/** The tasks whose action keys the provenance lists per image. */
const STAGES = ["fetch-images", "verify-sizes", "preprocess", "encode", "optimize"];

/** Metadata `optimize` records per image. */
interface OptimizeMeta {
  loss_initial: number;
  loss_final: number;
  psnr_initial: number;
  psnr_final: number;
  ssim_initial: number;
  ssim_final: number;
  steps: number;
  stop: string;
  provider: string;
}

export default aggregate<Config>({
  name: "package",
  deps: ["optimize", "encode", "preprocess", "verify-sizes", "label-split", "fetch-images"],
  // Everything that shapes the data; where it runs (executor) and when (schedule) do not.
  config: ["dataset", "download", "labels", "preprocess", "model", "optimize", "package"],
  version: "2",
  source: import.meta.url,
  describe: "write the dataset files and the report",
  // manifest.json records a --limit, so the limit is part of the action's key.
  fingerprint: (ctx) => Promise.resolve({ limit: ctx.limit ?? null }),
  async run(ctx, up) {
    const { store, config } = ctx;
    const splits = await store.getJson<SplitsObject>(up.aggregate("label-split").objects.splits);
    const optimized = up.items("optimize");
    const encoded = up.items("encode");
    const failures = [...up.failures("optimize")].map(([id, f]) => ({ id, ...f }))
      .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    const models = up.taskInputs("optimize");
    const files: Record<string, Uint8Array> = {};
    const counts: Record<string, number> = {};
    const images: ReportData["images"] = [];
    for (const [split, allIds] of Object.entries(splits.splits)) {
      const ids = allIds.filter((id) => optimized.has(id)).sort();
      counts[split] = ids.length;
      const metas = ids.map((id) => optimized.get(id)!.meta as unknown as OptimizeMeta);
      const arrays = await splitArrays(store, ids, optimized, encoded, metas);
      if (config.package.formats.includes("npz")) {
        files[`${split}/latents.npz`] = encodeNpz(arrays);
      }
      if (config.package.formats.includes("hdf5")) {
        files[`${split}/latents.h5`] = await encodeHdf5({
          datasets: arrays,
          attributes: {
            scaling_factor: config.model.scaling_factor,
            encoder_sha256: models.encoder ?? up.taskInputs("encode").encoder,
            decoder_sha256: models.decoder,
            config: JSON.stringify(config),
            split,
          },
        });
      }
      if (config.package.formats.includes("safetensors")) {
        files[`${split}/latents.safetensors`] = encodeSafetensors({
          tensors: Object.fromEntries(
            Object.entries(arrays).filter(([name]) => name !== "ids").map(([name, a]) => [
              name,
              {
                dtype: (a as NpyArray).dtype === "<i4" ? "I32" : "F32",
                shape: a.shape,
                data: (a as NpyArray).data as Float32Array | Int32Array,
              },
            ]),
          ),
          metadata: {
            ids: JSON.stringify(ids),
            scaling_factor: String(config.model.scaling_factor),
            encoder_sha256: up.taskInputs("encode").encoder,
            decoder_sha256: models.decoder,
            config: JSON.stringify(config),
          },
        });
      }
      files[`${split}/manifest.txt`] = text(
        ids.map((id) => manifestLine(splits.paths[id])).join(""),
      );
      files[`${split}/metrics.csv`] = text(metricsCsv(ids, metas));
      for (const [i, id] of ids.entries()) {
        const m = metas[i];
        const curve = await store.getJson<{ steps: number[]; losses: number[] }>(
          optimized.get(id)!.objects.curve,
        );
        images.push({
          id,
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
        });
      }
    }
    files["manifest.json"] = text(
      JSON.stringify(
        { ...provenance(up, config, splits, counts, failures), limit: ctx.limit ?? null },
        null,
        1,
      ),
    );
    files["report.html"] = text(renderReport({
      title: "latentforge dataset",
      toolVersion: denoJson.version,
      generatedAt: "",
      splits: Object.entries(counts).map(([name, count]) => ({ name, count })),
      images,
      failures,
      samples: await samples(ctx.store, up, images.map((i) => i.id), config, models.decoder),
      config,
      timings: timings(up),
    }));
    const objects: Record<string, string> = {};
    for (const [name, bytes] of Object.entries(files)) objects[name] = await store.put(bytes);
    return { objects, meta: { counts, failed: failures.length, limit: ctx.limit ?? null } };
  },
  async publish(ctx, output) {
    const meta = output.meta as { counts: Record<string, number>; failed: number; limit?: number };
    const images = Object.values(meta.counts).reduce((a, b) => a + b, 0);
    // A partial dataset never replaces a complete one (it goes beside it).
    const partial = typeof meta.limit === "number"
      ? `--limit ${meta.limit}`
      : images === 0 && meta.failed > 0
      ? `every item failed (${meta.failed})`
      : undefined;
    const r = await publishDirectory(ctx.store, output.objects, ctx.config.package.out_dir, {
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

async function splitArrays(
  store: ObjectStore,
  ids: string[],
  optimized: Map<string, Output>,
  encoded: Map<string, Output>,
  metas: OptimizeMeta[],
) {
  const load = async (digest: string) => decodeNpy(await store.get(digest), digest);
  const stack = async (digests: string[]): Promise<NpyArray> => {
    const parts = await Promise.all(digests.map(load));
    const shape = parts.length ? parts[0].shape.slice(1) : [4, 0, 0];
    const per = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(parts.length * per);
    parts.forEach((p, i) => data.set(p.data as Float32Array, i * per));
    return { dtype: "<f4", shape: [parts.length, ...shape], data };
  };
  const column = (pick: (m: OptimizeMeta) => number): NpyArray => ({
    dtype: "<f4",
    shape: [ids.length],
    data: Float32Array.from(metas.map(pick)),
  });
  return {
    ids: { dtype: "<U" as const, shape: [ids.length], data: ids },
    latents: await stack(ids.map((id) => optimized.get(id)!.objects.latent)),
    initial_latents: await stack(ids.map((id) => encoded.get(id)!.objects.latent)),
    loss_initial: column((m) => m.loss_initial),
    loss_final: column((m) => m.loss_final),
    psnr_initial: column((m) => m.psnr_initial),
    psnr_final: column((m) => m.psnr_final),
    ssim_initial: column((m) => m.ssim_initial),
    ssim_final: column((m) => m.ssim_final),
    steps: {
      dtype: "<i4" as const,
      shape: [ids.length],
      data: Int32Array.from(metas.map((m) => m.steps)),
    },
  };
}

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

function metricsCsv(ids: string[], metas: OptimizeMeta[]): string {
  const header =
    "id,loss_initial,loss_final,psnr_initial,psnr_final,ssim_initial,ssim_final,steps,stop,provider";
  const rows = ids.map((id, i) => {
    const m = metas[i];
    return [
      id,
      m.loss_initial,
      m.loss_final,
      m.psnr_initial,
      m.psnr_final,
      m.ssim_initial,
      m.ssim_final,
      m.steps,
      m.stop,
      m.provider,
    ].map(csvField).join(",");
  });
  return [header, ...rows].join("\n") + "\n";
}

function provenance(
  up: Upstream,
  config: Config,
  splits: SplitsObject,
  counts: Record<string, number>,
  failures: { id: string; task: string; reason: string }[],
) {
  const fetched = up.items("fetch-images");
  const keys = Object.fromEntries(STAGES.map((t) => [t, up.keys(t)]));
  const images: Record<string, unknown> = {};
  for (const [split, ids] of Object.entries(splits.splits)) {
    for (const id of [...ids].sort()) {
      images[id] = {
        split,
        path: splits.paths[id],
        source_md5: (fetched.get(id)?.meta as { md5?: string } | undefined)?.md5 ?? null,
        keys: Object.fromEntries(STAGES.map((t) => [t, keys[t].get(id) ?? null])),
      };
    }
  }
  return {
    tool: { name: "latentforge", version: denoJson.version },
    config,
    models: {
      encoder_sha256: up.taskInputs("encode").encoder,
      decoder_sha256: up.taskInputs("optimize").decoder,
      scaling_factor: config.model.scaling_factor,
    },
    counts,
    failures,
    images,
  };
}

function timings(up: Upstream): ReportData["timings"] {
  return ["fetch-images", "verify-sizes", "preprocess", "encode", "optimize"].map((task) => {
    const ms = [...up.durations(task).values()];
    return { task, seconds: ms.reduce((a, b) => a + b, 0) / 1000 };
  });
}

/** Eight images spread over the dataset: original, decoded encoder latent, decoded optimum. */
async function samples(
  store: ObjectStore,
  up: Upstream,
  ids: string[],
  config: Config,
  decoderDigest: string,
): Promise<ReportData["samples"]> {
  const count = Math.min(config.package.samples, ids.length);
  if (count === 0) return [];
  const picked = Array.from({ length: count }, (_, i) => ids[Math.floor(i * ids.length / count)]);
  const decoder = await ModelSession.open(store.path(decoderDigest), "decoder", {
    providers: config.model.providers,
    threads: config.model.threads,
    log: () => {},
  });
  const decode = async (digest: string) => {
    const latent = decodeNpy(await store.get(digest));
    const scaled = Float32Array.from(
      latent.data as Float32Array,
      (v) => v / config.model.scaling_factor,
    );
    const image = await decoder.run(scaled, latent.shape);
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

function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

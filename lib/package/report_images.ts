/**
 * The report's numbers per image: PSNR, SSIM and loss before and after optimization, the steps
 * taken, why it stopped, its loss curve (from optimize's stored curve) and, with buckets, its
 * bucket; and the report's title.
 *
 * @module
 */
import { basename, dirname, resolve } from "node:path";
import type { ReportImage } from "../report/html.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { Output } from "../store/records.ts";
import type { PackageRow } from "./rows.ts";

/**
 * Every row's line of the report, split by split, in the rows' order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 * import type { PackageRow } from "./rows.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const curve = await store.putJson({
 *   steps: [0, 10], losses: [0.5, 0.25], passes: [1, 11], psnr: [20, 21],
 * });
 * const metrics = {
 *   loss_initial: 0.5, loss_final: 0.25, psnr_initial: 20, psnr_final: 24.5,
 *   ssim_initial: 0.7, ssim_final: 0.8, steps: 10, passes: 11, stop: "converged", provider: "cpu",
 * };
 * const row = { id: "00017", bucket: "256x256", image: { metrics } } as unknown as PackageRow;
 * const [line] = await reportImages(store, new Map([["train", [row]]]), {
 *   optimized: new Map([["00017", { objects: { curve }, meta: null }]]),
 *   bucketed: false,
 * });
 * assert.equal(line.psnrFinal, 24.5);
 * assert.deepEqual(line.lossCurve, [[0, 0.5], [10, 0.25]]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function reportImages(
  store: ObjectStore,
  rowsBySplit: ReadonlyMap<string, readonly PackageRow[]>,
  { optimized, bucketed }: {
    /** Outputs of `optimize` (their `curve` objects). */
    optimized: ReadonlyMap<string, Output>;
    /** Whether images are bucketed (then each line names its bucket). */
    bucketed: boolean;
  },
): Promise<ReportImage[]> {
  const images: ReportImage[] = [];
  for (const [split, rows] of rowsBySplit) {
    for (const row of rows) {
      const m = row.image.metrics;
      if (m === null) {
        images.push(encodedOnly(row.id, split, bucketed ? row.bucket : undefined));
        continue;
      }
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
        bucket: bucketed ? row.bucket : undefined,
      });
    }
  }
  return images;
}

/** The dataset section of the config, as far as the title needs it. */
export interface TitledDataset {
  name?: string;
  kind: string;
  path?: string;
  list?: { path?: string; url?: string };
  splits?: Record<string, string | string[] | { path: string }>;
  shards?: string[];
  files?: string[];
}

/**
 * The report's title: `dataset.name`, else what the source is called.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(datasetTitle({ kind: "ffhq" }), "FFHQ");
 * assert.equal(datasetTitle({ kind: "folder", path: "data/BSDS500/images" }), "images");
 * assert.equal(datasetTitle({ kind: "urls", list: { url: "https://x.org/cats.txt" } }), "cats");
 * ```
 */
export function datasetTitle(d: TitledDataset): string {
  if (d.name) return d.name;
  if (d.kind === "ffhq") return "FFHQ";
  if (d.kind === "folder") return basename(resolve(d.path!));
  // Split folders, shards and tables: the folder that holds them (`imagenet/train` → imagenet).
  const first = d.splits ? Object.values(d.splits)[0] : (d.shards ?? d.files)?.[0];
  if (first !== undefined) {
    const path = typeof first === "string" ? first : Array.isArray(first) ? first[0] : first.path;
    return basename(dirname(resolve(path)));
  }
  return basename(d.list!.path ?? new URL(d.list!.url!).pathname).replace(/\.[^.]*$/, "");
}

/**
 * An image whose latent is the encoder's (`optimize.method: "none"`): no optimization ran, so
 * its quality is unknown (NaN) until a decoded sample measures it (see {@link withMeasured}).
 */
function encodedOnly(id: string, split: string, bucket: string | undefined): ReportImage {
  return {
    id,
    split,
    psnrInitial: NaN,
    psnrFinal: NaN,
    ssimInitial: NaN,
    ssimFinal: NaN,
    lossInitial: NaN,
    lossFinal: NaN,
    steps: 0,
    stopReason: "encoder latent kept",
    lossCurve: [],
    bucket,
  };
}

/**
 * The report's images with the quality measured on decoded samples filled in, for images that
 * have no optimize metrics (an encode-only dataset shows its encoder's reconstruction quality
 * on the samples).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const image = {
 *   id: "a", split: "train", psnrInitial: NaN, psnrFinal: NaN, ssimInitial: NaN, ssimFinal: NaN,
 *   lossInitial: NaN, lossFinal: NaN, steps: 0, stopReason: "encoder latent kept", lossCurve: [],
 * };
 * const [measured] = withMeasured([image], [{ id: "a", psnr: 31.5, ssim: 0.9 }]);
 * assert.deepEqual([measured.psnrInitial, measured.psnrFinal, measured.ssimFinal], [31.5, 31.5, 0.9]);
 * ```
 */
export function withMeasured(
  images: readonly ReportImage[],
  samples: readonly { id: string; psnr: number; ssim: number }[],
): ReportImage[] {
  const byId = new Map(samples.map((s) => [s.id, s]));
  return images.map((image) => {
    const s = byId.get(image.id);
    if (!s || Number.isFinite(image.psnrFinal)) return image;
    return {
      ...image,
      psnrInitial: s.psnr,
      psnrFinal: s.psnr,
      ssimInitial: s.ssim,
      ssimFinal: s.ssim,
    };
  });
}

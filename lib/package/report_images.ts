/**
 * The report's numbers per image: PSNR, SSIM and loss before and after optimization, the steps
 * taken, why it stopped, its loss curve (from optimize's stored curve) and, with buckets, its
 * bucket; and the report's title.
 *
 * @module
 */
import { basename, resolve } from "node:path";
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
  return basename(d.list!.path ?? new URL(d.list!.url!).pathname).replace(/\.[^.]*$/, "");
}

/**
 * The report's numbers per image: PSNR, SSIM and loss before and after optimization, the steps
 * taken, why it stopped, its loss curve (from optimize's stored curve, read only for the images
 * whose detail the report keeps) and, with buckets, its bucket, gathered into the report's
 * tally; and the report's title.
 *
 * @module
 */
import { basename, dirname, resolve } from "node:path";
import type { ReportImage } from "../report/html.ts";
import { ImageTally } from "../report/image_tally.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { PackageRow } from "./rows.ts";

/**
 * The report's figures of every row, added to a tally split by split in the rows' order; the
 * loss curves are read from the store only for the images whose detail the tally keeps.
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
 * const row = { id: "00017", bucket: "256x256", image: { metrics }, curve } as unknown as PackageRow;
 * const tally = await tallyImages(store, new Map([["train", [row]]]), { bucketed: false, samples: 1 });
 * assert.deepEqual(tally.sampleIds, ["00017"]);
 * assert.equal(tally.detail[0].psnrFinal, 24.5);
 * assert.deepEqual(tally.detail[0].lossCurve, [[0, 0.5], [10, 0.25]]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function tallyImages(
  store: ObjectStore,
  rowsBySplit: ReadonlyMap<string, readonly PackageRow[]>,
  { bucketed, samples }: {
    /** Whether images are bucketed (then each line names its bucket). */
    bucketed: boolean;
    /** How many images the report's samples show (`package.samples`). */
    samples: number;
  },
): Promise<ImageTally> {
  let expected = 0;
  for (const rows of rowsBySplit.values()) expected += rows.length;
  const tally = new ImageTally({ expected, samples });
  for (const [split, rows] of rowsBySplit) {
    for (const row of rows) {
      const bucket = bucketed ? row.bucket : undefined;
      const m = row.image.metrics;
      if (m === null) {
        tally.add(encodedOnly(row.id, split, bucket));
        continue;
      }
      const curve = tally.wantsDetail ? await curveOf(store, row) : null;
      tally.add({
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
        lossCurve: curve ? curve.steps.map((s, k) => [s, curve.losses[k]] as const) : [],
        passes: m.passes,
        psnrCurve: curve ? curve.passes.map((p, k) => [p, curve.psnr[k]] as const) : [],
        bucket,
      });
    }
  }
  return tally;
}

/** Raised when an optimized image has no stored loss curve. */
export class MissingCurveError extends Error {
  override readonly name = "MissingCurveError";
}

/** The loss and PSNR curve optimize stored for a row's image. */
async function curveOf(store: ObjectStore, row: PackageRow) {
  if (row.curve === undefined) {
    throw new MissingCurveError(
      `image ${row.id}: expected optimize to have recorded a loss curve (object "curve"), found none`,
    );
  }
  return await store.getJson<
    { steps: number[]; losses: number[]; passes: number[]; psnr: number[] }
  >(row.curve);
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
 * its quality is unknown (NaN) until a decoded sample measures it (see `ImageTally.measure`).
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

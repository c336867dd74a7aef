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
import type { ImageTally } from "../report/image_tally.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { PackageRow } from "./rows.ts";

/**
 * Adds one row's figures to the report's tally; its loss curve is read from the store only when
 * the tally keeps its detail.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 * import { ImageTally } from "../report/image_tally.ts";
 * import type { PackageRow } from "./rows.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const tally = new ImageTally({ expected: 1 });
 * const row = { id: "a", split: "train", bucket: "256x256", image: { metrics: null } };
 * await tallyRow(new ObjectStore(cache), tally, row as unknown as PackageRow, { bucketed: true });
 * assert.equal(tally.detail[0].stopReason, "encoder latent kept");
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function tallyRow(
  store: ObjectStore,
  tally: ImageTally,
  row: PackageRow,
  { bucketed }: { bucketed: boolean },
): Promise<void> {
  const bucket = bucketed ? row.bucket : undefined;
  const m = row.image.metrics;
  if (m === null) {
    tally.add(encodedOnly(row.id, row.split, bucket));
    return;
  }
  const curve = tally.wantsDetail ? await curveOf(store, row) : null;
  tally.add({
    id: row.id,
    split: row.split,
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

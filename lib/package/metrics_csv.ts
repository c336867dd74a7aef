/**
 * A split's `metrics.csv`: one row per optimized item (each image, and with flips its
 * `<id>#flip` item too) with the loss, PSNR and SSIM before and after optimization, the steps
 * taken, why it stopped and the provider it ran on. Fields are quoted as RFC 4180 asks.
 *
 * @module
 */
import type { OptimizeMetrics, PackageRow } from "./rows.ts";

/** The first line of `metrics.csv`. */
export const METRICS_CSV_HEADER =
  "id,bucket,loss_initial,loss_final,psnr_initial,psnr_final,ssim_initial,ssim_final,steps,passes,stop,provider\n";

/**
 * The lines of `metrics.csv` for one row: its image's, then its flipped item's (none for rows
 * without metrics: encoder latents kept as they are).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PackageRow } from "./rows.ts";
 *
 * const metrics = {
 *   loss_initial: 0.5, loss_final: 0.25, psnr_initial: 20, psnr_final: 24.5,
 *   ssim_initial: 0.7, ssim_final: 0.8, steps: 60, passes: 61, stop: "converged", provider: "cpu",
 * };
 * const row = {
 *   id: "train/a,b", bucket: "256x256", flipped: null, image: { metrics },
 * } as unknown as PackageRow;
 * assert.equal(
 *   metricsLines(row),
 *   '"train/a,b",256x256,0.5,0.25,20,24.5,0.7,0.8,60,61,converged,cpu\n',
 * );
 * ```
 */
export function metricsLines(row: PackageRow): string {
  const line = (id: string, m: OptimizeMetrics) =>
    [
      id,
      row.bucket,
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
    ].map(csvField).join(",") + "\n";
  return (row.image.metrics ? line(row.id, row.image.metrics) : "") +
    (row.flipped?.metrics ? line(row.flipped.item, row.flipped.metrics) : "");
}

/** A CSV field quoted as RFC 4180 asks when it holds a comma, a quote or a line break. */
function csvField(value: string | number): string {
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

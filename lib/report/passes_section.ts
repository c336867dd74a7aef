/**
 * The report's section on compute: PSNR of each image's best latent against passes (one pass is
 * one loss-and-gradient evaluation, line searches included), as the median across images with
 * quantile bands, and how many passes and steps the images took. Passes are what an optimization
 * costs, whatever the method, so this is the chart to read when choosing `optimize.method` or
 * `optimize.max_passes`.
 *
 * @module
 */
import { escapeHtml } from "./escape.ts";
import { fixed } from "./format.ts";
import type { ImageTally } from "./image_tally.ts";
import { lossBands, type LossCurve, median } from "./stats.ts";
import { bandChart, histogramChart } from "./svg_chart.ts";

/** What the section shows: figures of every image that counted its passes. */
export interface PassesFigures {
  /** Loss-and-gradient evaluations each image took. */
  passes: readonly number[];
  /** Optimization steps (updates of the latent) each took. */
  steps: readonly number[];
  /** PSNR in dB of the best latent after each recorded pass, ascending by pass, per image. */
  psnrCurves: readonly LossCurve[];
  /** Said under the chart when the curves are those of a sample of the images. */
  sampled?: string;
}

const COLOR = "#00798c";

/**
 * The section's figures from a tally: of the images that counted their passes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ImageTally } from "./image_tally.ts";
 *
 * const tally = ImageTally.of([{
 *   id: "a", split: "train", psnrInitial: 20, psnrFinal: 21, ssimInitial: 0.7, ssimFinal: 0.8,
 *   lossInitial: 0.5, lossFinal: 0.25, steps: 2, stopReason: "converged", lossCurve: [],
 *   passes: 3, psnrCurve: [[1, 20], [3, 21]],
 * }]);
 * assert.deepEqual(passesFigures(tally).passes, [3]);
 * ```
 */
export function passesFigures(tally: ImageTally): PassesFigures {
  const passes = tally.numbers("passes");
  const steps = tally.numbers("steps");
  const counted = [...passes.keys()].filter((i) => !Number.isNaN(passes[i]));
  const note = tally.detailNote();
  return {
    passes: counted.map((i) => passes[i]),
    steps: counted.map((i) => steps[i]),
    psnrCurves: tally.detail.filter((i) => i.passes !== undefined).map((i) => i.psnrCurve ?? []),
    sampled: note ? `Curves: ${note}` : undefined,
  };
}

/**
 * The section as HTML: PSNR against passes (median and bands), and passes per image. Says so
 * when no image recorded a PSNR curve (results of an older latentforge).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const html = renderPassesSection({
 *   passes: [3, 3],
 *   steps: [2, 1],
 *   psnrCurves: [[[1, 20], [2, 21], [3, 21.5]], [[1, 22], [2, 22], [3, 23]]],
 * });
 * assert.match(html, /<h2>PSNR per pass<\/h2>/);
 * assert.match(html, /Median passes per image: 3; median steps: 1\.5/);
 * ```
 */
export function renderPassesSection(figures: PassesFigures): string {
  const curves = figures.psnrCurves.filter((c) => c.length > 0);
  if (curves.length === 0) {
    return `<section><h2>PSNR per pass</h2><p class="note">No image recorded its PSNR per ` +
      `pass.</p></section>`;
  }
  const chart = bandChart({
    title: "PSNR of the best latent over passes",
    xLabel: "passes (loss-and-gradient evaluations)",
    yLabel: "PSNR (dB)",
    bands: lossBands(curves),
    color: COLOR,
  });
  const passes = histogramChart({
    title: "Passes per image",
    xLabel: "passes",
    series: [{ label: "images", color: COLOR, values: figures.passes }],
    bins: 16,
    integer: true,
  });
  const note = `Median passes per image: ${fixed(median(figures.passes), 0)}; ` +
    `median steps: ${fixed(median(figures.steps), 1)}.`;
  return `<section><h2>PSNR per pass</h2><p class="note">${escapeHtml(note)} A pass is one ` +
    `loss-and-gradient evaluation (for L-BFGS, line-search evaluations included), the unit of ` +
    `compute every method pays.</p><div class="grid two">` +
    `<figure class="panel chart-panel">${chart}<figcaption>Median PSNR across images of each ` +
    `image's best latent so far, with 25–75 % and 10–90 % bands; an image that stopped keeps ` +
    `its final PSNR.${
      figures.sampled ? ` ${escapeHtml(figures.sampled)}` : ""
    }</figcaption></figure><figure class="panel chart-panel">${passes}` +
    `<figcaption>How many passes each image took before it stopped.</figcaption></figure>` +
    `</div></section>`;
}

/**
 * The report's bucket section: how many images each aspect-ratio bucket holds, and how much
 * the optimization gained in each (PSNR of the decoded latent, before and after).
 *
 * @module
 */
import { escapeHtml } from "./escape.ts";
import { median } from "./stats.ts";
import { barChart } from "./svg_chart.ts";
import { parseBucketName } from "../image/buckets.ts";

/** What the section needs of each image. */
export interface BucketedImage {
  bucket: string;
  psnrInitial: number;
  psnrFinal: number;
}

/** One bucket's figures. */
export interface BucketSummary {
  bucket: string;
  images: number;
  meanPsnrInitial: number;
  meanPsnrFinal: number;
  /** Mean and median of the per-image PSNR gain, in dB. */
  meanGain: number;
  medianGain: number;
}

/**
 * Per bucket (portrait to landscape: by aspect ratio, then area): image count, mean PSNR before and after, mean and median gain.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(summarizeBuckets([{ bucket: "320x192", psnrInitial: 20, psnrFinal: 21.5 }]), [{
 *   bucket: "320x192", images: 1, meanPsnrInitial: 20, meanPsnrFinal: 21.5, meanGain: 1.5,
 *   medianGain: 1.5,
 * }]);
 * ```
 */
export function summarizeBuckets(images: Iterable<BucketedImage>): BucketSummary[] {
  // Sums in the images' order, and the gains for the median: no image is kept.
  const groups = new Map<string, { n: number; initial: number; final: number; gains: number[] }>();
  for (const i of images) {
    let g = groups.get(i.bucket);
    if (!g) groups.set(i.bucket, g = { n: 0, initial: 0, final: 0, gains: [] });
    g.n++;
    g.initial += i.psnrInitial;
    g.final += i.psnrFinal;
    g.gains.push(i.psnrFinal - i.psnrInitial);
  }
  // Portrait to landscape: by aspect ratio, then by size.
  const order = (name: string) => {
    const { width, height } = parseBucketName(name);
    return [width / height, width * height];
  };
  const sorted = [...groups].sort(([a], [b]) => {
    const [ra, sa] = order(a);
    const [rb, sb] = order(b);
    return ra - rb || sa - sb;
  });
  return sorted.map(([bucket, g]) => ({
    bucket,
    images: g.n,
    meanPsnrInitial: g.initial / g.n,
    meanPsnrFinal: g.final / g.n,
    meanGain: g.gains.reduce((a, b) => a + b, 0) / g.n,
    medianGain: median(g.gains),
  }));
}

/**
 * The section as HTML: a histogram of images per bucket, the mean PSNR gain per bucket, and a
 * table of the figures. Empty when no image has a bucket.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const html = renderBucketSection([{ bucket: "320x192", psnrInitial: 20, psnrFinal: 21.5 }]);
 * assert.match(html, /^<section><h2>Buckets<\/h2>/);
 * assert.match(html, /aria-label="Images per bucket"/);
 * ```
 */
export function renderBucketSection(images: Iterable<BucketedImage>): string {
  const rows = summarizeBuckets(images);
  if (rows.length === 0) return "";
  const label = (b: string) => b.replace("x", "×");
  const count = barChart({
    title: "Images per bucket",
    xLabel: "images",
    bars: rows.map((r) => ({ label: label(r.bucket), value: r.images })),
    format: (v) => String(Math.round(v)),
  });
  const gain = barChart({
    title: "Mean PSNR gain per bucket",
    xLabel: "dB",
    color: "#00798c",
    bars: rows.map((r) => ({ label: label(r.bucket), value: r.meanGain })),
    format: (v) => `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(2)} dB`,
  });
  const dB = (v: number) => Number.isFinite(v) ? v.toFixed(2) : "–";
  const table = rows.map((r) =>
    `<tr><td>${escapeHtml(label(r.bucket))}</td><td class="num">${r.images}</td>` +
    `<td class="num">${dB(r.meanPsnrInitial)}</td><td class="num">${dB(r.meanPsnrFinal)}</td>` +
    `<td class="num">${r.meanGain >= 0 ? "+" : "−"}${dB(Math.abs(r.meanGain))}</td>` +
    `<td class="num">${r.medianGain >= 0 ? "+" : "−"}${dB(Math.abs(r.medianGain))}</td></tr>`
  ).join("");
  return `<section><h2>Buckets</h2><p class="note">Images keep their aspect ratio in buckets ` +
    `(width×height); each bucket's latents are batched and packaged together.</p>` +
    `<div class="grid two"><figure class="panel chart-panel">${count}<figcaption>Images ` +
    `per aspect-ratio bucket.</figcaption></figure><figure class="panel chart-panel">${gain}` +
    `<figcaption>PSNR of the optimized latent minus the encoder's, averaged per bucket.` +
    `</figcaption></figure></div><div class="panel"><table><thead><tr><th>bucket</th>` +
    `<th class="num">images</th><th class="num">PSNR before (dB)</th>` +
    `<th class="num">PSNR after (dB)</th><th class="num">mean gain</th>` +
    `<th class="num">median gain</th></tr></thead><tbody>${table}</tbody></table></div></section>`;
}

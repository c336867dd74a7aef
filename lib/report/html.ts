/**
 * The dataset's report: one self-contained HTML file (inline CSS, inline SVG charts, images as
 * data URIs; no script, no network) with counts, failures, notes on the inputs (skipped files,
 * upscaled and duplicate images), quality before and after optimization, loss curves, sample
 * reconstructions and the config — and, in one delimited section (see run_section.ts), the
 * facts of the run that built it.
 *
 * @module
 */

import type { Reconciliation } from "../dataset/reconciliation.ts";
import { renderReconciliationSection } from "./reconciliation_section.ts";
import type { RunFacts } from "../dag/run_facts.ts";
import { notesSection, type ReportNotes } from "./notes_section.ts";
import { AFTER, BEFORE, STYLE } from "./style.ts";
import { encodeBase64 } from "./base64.ts";
import { escapeHtml } from "./escape.ts";
import { counted, fixed as fmt, signed } from "./format.ts";
import { renderRunSection } from "./run_section.ts";
import { type ReportModels, titleArea } from "./title_area.ts";

export type { ReportModels, ReportNotes };
import { lossBands, type LossCurve, median } from "./stats.ts";
import { bandChart, histogramChart, scatterChart } from "./svg_chart.ts";
import { renderBucketSection } from "./buckets_section.ts";
import { ImageTally } from "./image_tally.ts";
import { passesFigures, renderPassesSection } from "./passes_section.ts";

/** Images of one split that made it through the pipeline. */
export interface ReportSplit {
  name: string;
  /** Images in the split that were optimized. */
  count: number;
}

/** Per-image results of encode and optimize. PSNR in dB on [-1, 1] images (peak-to-peak 2). */
export interface ReportImage {
  id: string;
  split: string;
  psnrInitial: number;
  psnrFinal: number;
  ssimInitial: number;
  ssimFinal: number;
  lossInitial: number;
  lossFinal: number;
  /** Optimization steps taken. */
  steps: number;
  /** Why optimization stopped, e.g. "converged", "max_steps". */
  stopReason: string;
  /** Loss at recorded steps, ascending by step; may be subsampled. */
  lossCurve: LossCurve;
  /** Loss-and-gradient evaluations taken, line searches included. */
  passes?: number;
  /** PSNR of the best latent after recorded passes, ascending by pass; may be subsampled. */
  psnrCurve?: LossCurve;
  /** Aspect-ratio bucket (`WxH`), when the dataset is bucketed. */
  bucket?: string;
}

/** An item that failed, with the task where it failed and the reason. */
export interface ReportFailure {
  id: string;
  task: string;
  reason: string;
}

/** A sample triplet: PNG bytes of the original, the decoded encoder latent, the decoded optimized latent. */
export interface ReportSample {
  id: string;
  original: Uint8Array;
  initial: Uint8Array;
  optimized: Uint8Array;
}

/** Everything the report shows. */
export interface ReportData {
  /** The dataset's name: the page's heading. */
  title?: string;
  toolVersion: string;
  /** The models and normalization the latents were made with (the title area names them). */
  models?: ReportModels;
  splits: ReportSplit[];
  /** Every image's figures: as a list, or gathered one by one (see image_tally.ts). */
  images: readonly ReportImage[] | ImageTally;
  failures: ReportFailure[];
  /** Up to eight are shown. */
  samples: ReportSample[];
  config: unknown;
  /** The reconciliation of `dataset.adopt`'s local copies, when there were any. */
  reconciliation?: Reconciliation | null;
  /** Notes on the inputs; none when absent. */
  notes?: ReportNotes;
  /**
   * The run that built the dataset. Usually left out: publishing fills the run section in
   * (run_files.ts), so the stored report is the same whichever run built it.
   */
  run?: RunFacts | null;
}

const SPLIT_COLORS = ["#00798c", "#edae49", "#6a4c93", "#d1495b", "#30638e", "#66a182"];
const MAX_FAILURE_ROWS = 500;

/**
 * Renders the report as one HTML document string; write it to `report.html`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const html = renderReport({
 *   title: "BSDS500", toolVersion: "0.1.0",
 *   splits: [], images: [], failures: [], samples: [], config: {},
 * });
 * assert.match(html, /<title>BSDS500 · latentforge dataset report<\/title>/);
 * assert.doesNotMatch(html, /<script/);
 * ```
 */
export function renderReport(data: ReportData): string {
  const title = data.title ?? "latentforge dataset";
  const tally = data.images instanceof ImageTally
    ? data.images
    : ImageTally.of(data.images, data.samples.map((s) => s.id));
  const body = [
    titleArea(title, data.toolVersion, data.models),
    renderRunSection(data.run ?? null),
    summary(data, tally),
    splitsAndFailures(data),
    renderReconciliationSection(data.reconciliation),
    notesSection(data.notes),
    quality(data, tally),
    renderBucketSection(tally.bucketed()),
    optimization(tally),
    renderPassesSection(passesFigures(tally)),
    samples(data, tally),
    configuration(data),
    `<footer>latentforge ${escapeHtml(data.toolVersion)}</footer>`,
  ].join("\n");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${escapeHtml(title)} · latentforge dataset report</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

function summary(data: ReportData, tally: ImageTally): string {
  const finite = (name: Parameters<ImageTally["numbers"]>[0]) =>
    tally.numbers(name).filter(Number.isFinite);
  const psnr0 = median(finite("psnrInitial"));
  const psnr1 = median(finite("psnrFinal"));
  const ssim0 = median(finite("ssimInitial"));
  const ssim1 = median(finite("ssimFinal"));
  const before = tally.numbers("psnrInitial");
  const gain = median(
    tally.numbers("psnrFinal").map((v, i) => v - before[i]).filter(Number.isFinite),
  );
  const card = (label: string, value: string, note = "", cls = "") =>
    `<div class="card ${cls}"><div class="label">${
      escapeHtml(label)
    }</div><div class="value">${value}</div>${note ? `<div class="note">${note}</div>` : ""}</div>`;
  const arrow = (a: string, b: string) =>
    `<span class="before">${escapeHtml(a)}</span><span class="arrow">→</span><span class="after">${
      escapeHtml(b)
    }</span>`;
  return `<section class="cards">${
    [
      card(
        "Images",
        escapeHtml(tally.count.toLocaleString("en-US")),
        escapeHtml(`in ${counted(data.splits.length, "split")}`),
      ),
      card(
        "Failed",
        escapeHtml(data.failures.length.toLocaleString("en-US")),
        data.failures.length ? "see the list below" : "none",
        data.failures.length ? "bad" : "good",
      ),
      card(
        "Median PSNR",
        arrow(fmt(psnr0, 2), fmt(psnr1, 2)),
        `dB · median gain ${escapeHtml(signed(gain, 2))} dB`,
        "pair",
      ),
      card("Median SSIM", arrow(fmt(ssim0, 3), fmt(ssim1, 3)), "before → after", "pair"),
      card(
        "Median steps",
        escapeHtml(fmt(median(tally.numbers("steps")), 0)),
        escapeHtml(stopReasonsLine(tally.stopReasons, maxSteps(data.config))),
      ),
    ].join("")
  }</section>`;
}

function splitsAndFailures(data: ReportData): string {
  const total = data.splits.reduce((s, x) => s + x.count, 0);
  const rows = data.splits.map((s, k) => {
    const share = total > 0 ? s.count / total : 0;
    return `<tr><td><span class="dot" style="background:${
      SPLIT_COLORS[k % SPLIT_COLORS.length]
    }"></span>${escapeHtml(s.name)}</td><td class="num">${s.count.toLocaleString("en-US")}</td>` +
      `<td><div class="share"><div class="meter"><div style="width:${
        (share * 100).toFixed(1)
      }%"></div></div><span>${(share * 100).toFixed(1)} %</span></div></td></tr>`;
  }).join("");
  const byTask = new Map<string, number>();
  for (const f of data.failures) byTask.set(f.task, (byTask.get(f.task) ?? 0) + 1);
  const failureRows = data.failures.slice(0, MAX_FAILURE_ROWS).map((f) =>
    `<tr><td class="mono">${escapeHtml(f.id)}</td><td class="nowrap">${
      escapeHtml(f.task)
    }</td><td class="reason">${escapeHtml(f.reason)}</td></tr>`
  ).join("");
  const more = data.failures.length > MAX_FAILURE_ROWS
    ? `<p class="note">and ${
      data.failures.length - MAX_FAILURE_ROWS
    } more (all are in manifest.json)</p>`
    : "";
  const failures = data.failures.length === 0
    ? `<p class="ok">No item failed.</p>`
    : `<p class="note">${
      [...byTask].map(([t, n]) => `${escapeHtml(t)}: ${n}`).join(" · ")
    }</p><div class="scroll"><table class="failures"><thead><tr><th>item</th><th>task</th><th>reason</th></tr></thead><tbody>${failureRows}</tbody></table></div>${more}`;
  return `<section class="grid two"><div class="panel"><h2>Splits</h2>` +
    `<table class="splits"><thead><tr><th>split</th><th class="num">images</th><th>share</th></tr></thead>` +
    `<tbody>${rows}</tbody><tfoot><tr><td>total</td><td class="num">${
      total.toLocaleString("en-US")
    }</td><td></td></tr></tfoot></table></div>` +
    `<div class="panel"><h2>Failures <span class="count">${data.failures.length}</span></h2>${failures}</div></section>`;
}

function quality(data: ReportData, tally: ImageTally): string {
  const all = (name: Parameters<ImageTally["numbers"]>[0]) => Array.from(tally.numbers(name));
  const splitColor = new Map(
    data.splits.map((s, k) => [s.name, SPLIT_COLORS[k % SPLIT_COLORS.length]]),
  );
  const legendItems = data.splits.map((s) => ({
    label: s.name,
    color: splitColor.get(s.name)!,
  }));
  const points = (pick: (i: ReportImage) => [number, number], digits: number) =>
    tally.detail.map((i) => {
      const [x, y] = pick(i);
      return {
        x,
        y,
        color: splitColor.get(i.split) ?? "#555",
        label: `${i.id} (${i.split}): ${fmt(x, digits)} → ${fmt(y, digits)}`,
      };
    });
  const note = tally.detailNote();
  const shown = note ? ` ${escapeHtml(note)}` : "";
  const charts = [
    figure(
      histogramChart({
        title: "PSNR before and after optimization",
        xLabel: "PSNR (dB)",
        series: [
          { label: "encoder latent", color: BEFORE, values: all("psnrInitial") },
          { label: "optimized latent", color: AFTER, values: all("psnrFinal") },
        ],
      }),
      "PSNR of the decoded latent against the preprocessed image, all images.",
    ),
    figure(
      scatterChart({
        title: "PSNR per image",
        xLabel: "PSNR of the encoder latent (dB)",
        yLabel: "PSNR of the optimized latent (dB)",
        points: points((i) => [i.psnrInitial, i.psnrFinal], 2),
        legendItems,
      }),
      `One point per image, coloured by split; above the y = x line the optimization helped.${shown}`,
    ),
    figure(
      histogramChart({
        title: "SSIM before and after optimization",
        xLabel: "SSIM",
        series: [
          { label: "encoder latent", color: BEFORE, values: all("ssimInitial") },
          { label: "optimized latent", color: AFTER, values: all("ssimFinal") },
        ],
      }),
      "Structural similarity of the decoded latent against the preprocessed image.",
    ),
    figure(
      scatterChart({
        title: "SSIM per image",
        xLabel: "SSIM of the encoder latent",
        yLabel: "SSIM of the optimized latent",
        points: points((i) => [i.ssimInitial, i.ssimFinal], 4),
        legendItems,
      }),
      `One point per image, coloured by split.${shown}`,
    ),
  ];
  return `<section><h2>Reconstruction quality</h2><div class="grid two">${
    charts.join("")
  }</div></section>`;
}

function optimization(tally: ImageTally): string {
  const bands = lossBands(tally.curves("loss"));
  const reasons = tally.stopReasons;
  const initial = tally.numbers("lossInitial");
  const ratio = tally.numbers("lossFinal").map((v, i) => v / initial[i]).filter(Number.isFinite);
  const note = tally.detailNote();
  const stepsChart = histogramChart({
    title: "Steps per image",
    xLabel: "optimization steps",
    series: [{ label: "images", color: AFTER, values: Array.from(tally.numbers("steps")) }],
    bins: 16,
    integer: true,
  });
  const reasonRows = [...reasons].sort((a, b) => b[1] - a[1]).map(([r, n]) =>
    `<tr><td>${escapeHtml(r)}</td><td class="num">${n.toLocaleString("en-US")}</td></tr>`
  ).join("");
  return `<section><h2>Optimization</h2><div class="grid two">${
    figure(
      bandChart({ title: "Loss over steps", xLabel: "step", yLabel: "loss", bands, color: AFTER }),
      `Median loss across images with 25–75 % and 10–90 % bands. An image that stopped keeps its final loss. Median final / initial loss: ${
        escapeHtml(fmt(median(ratio), 3))
      }.${note ? ` Curves: ${escapeHtml(note)}` : ""}`,
    )
  }${figure(stepsChart, "How many steps each image took before it stopped.")}</div>` +
    `<table class="compact"><thead><tr><th>stop reason</th><th class="num">images</th></tr></thead><tbody>${reasonRows}</tbody></table></section>`;
}

function samples(data: ReportData, tally: ImageTally): string {
  const cards = data.samples.slice(0, 8).map((s) => {
    const m = tally.sampled(s.id);
    const img = (bytes: Uint8Array, caption: string, note: string) =>
      `<figure><img src="data:image/png;base64,${encodeBase64(bytes)}" alt="${
        escapeHtml(`${s.id}: ${caption}`)
      }"><figcaption>${escapeHtml(caption)}${
        note ? `<b>${escapeHtml(note)}</b>` : ""
      }</figcaption></figure>`;
    return `<article class="sample"><h3><span class="mono">${escapeHtml(s.id)}</span>${
      m ? `<span class="tag">${escapeHtml(m.split)}</span>` : ""
    }</h3><div class="triplet">${img(s.original, "original", "")}${
      img(s.initial, "encoder latent", m ? `${fmt(m.psnrInitial, 2)} dB` : "")
    }${img(s.optimized, "optimized latent", m ? `${fmt(m.psnrFinal, 2)} dB` : "")}</div></article>`;
  });
  const body = cards.length
    ? `<div class="grid samples">${cards.join("")}</div>`
    : `<p class="note">No samples.</p>`;
  return `<section><h2>Samples</h2><p class="note">Original (preprocessed) · decoder of the encoder's latent · decoder of the optimized latent, with PSNR against the original.</p>${body}</section>`;
}

function configuration(data: ReportData): string {
  return `<section><h2>Configuration</h2><pre class="config">${
    escapeHtml(JSON.stringify(data.config, null, 2) ?? "null")
  }</pre></section>`;
}

function figure(svg: string, caption: string): string {
  return `<figure class="panel chart-panel">${svg}<figcaption>${caption}</figcaption></figure>`;
}

/**
 * Why images stopped, in words: `5 stopped improving · 3 used all 60 steps`. The reasons'
 * names (`converged`, `max_steps`) read as a contradiction beside a median of 60 steps.
 */
function stopReasonsLine(counts: ReadonlyMap<string, number>, max: number | undefined): string {
  const words = (reason: string) =>
    reason === "converged"
      ? "stopped improving"
      : reason === "max_steps"
      ? `used all ${max === undefined ? "their" : max} steps (max_steps)`
      : reason === "max_passes"
      ? "used all their passes (max_passes)"
      : reason;
  return [...counts].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${n} ${words(r)}`).join(" · ");
}

/** `optimize.max_steps` of the config the report shows, when it has one. */
function maxSteps(config: unknown): number | undefined {
  const v = (config as { optimize?: { max_steps?: unknown } } | null)?.optimize?.max_steps;
  return typeof v === "number" ? v : undefined;
}

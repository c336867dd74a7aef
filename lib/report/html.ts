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
import { type InputNotes, UPSCALE_NOTE_FACTOR } from "../dataset/input_notes.ts";
import { encodeBase64 } from "./base64.ts";
import { escapeHtml } from "./escape.ts";
import { counted, fixed as fmt, signed } from "./format.ts";
import { renderRunSection } from "./run_section.ts";
import { lossBands, type LossCurve, median } from "./stats.ts";
import { bandChart, histogramChart, scatterChart } from "./svg_chart.ts";
import { type BucketedImage, renderBucketSection } from "./buckets_section.ts";
import { renderPassesSection } from "./passes_section.ts";

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

/**
 * What the inputs held that a user should know about (see input_notes.ts), plus the files of a
 * dataset folder that were not read; every list may be empty.
 */
export interface ReportNotes extends InputNotes {
  skipped: { path: string; reason: string }[];
}

/** Everything the report shows. */
export interface ReportData {
  /** The dataset's name: the page's heading. */
  title?: string;
  toolVersion: string;
  splits: ReportSplit[];
  images: ReportImage[];
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

const BEFORE = "#d1495b";
const AFTER = "#00798c";
const SPLIT_COLORS = ["#00798c", "#edae49", "#6a4c93", "#d1495b", "#30638e", "#66a182"];
const MAX_FAILURE_ROWS = 500;
const MAX_NOTE_ROWS = 200;

/**
 * Renders the report as one HTML document string; write it to `report.html`.
 *
 * @example
 * ```ts
 * const html = renderReport({
 *   title: "BSDS500", toolVersion: "0.1.0",
 *   splits: [], images: [], failures: [], samples: [], config: {},
 * });
 * ```
 */
export function renderReport(data: ReportData): string {
  const title = data.title ?? "latentforge dataset";
  const body = [
    header(data, title),
    renderRunSection(data.run ?? null),
    summary(data),
    splitsAndFailures(data),
    renderReconciliationSection(data.reconciliation),
    notes(data.notes),
    quality(data),
    renderBucketSection(data.images.filter((i) => i.bucket !== undefined) as BucketedImage[]),
    optimization(data),
    renderPassesSection(
      data.images.flatMap((i) =>
        i.passes === undefined ? [] : [{ ...i, passes: i.passes, psnrCurve: i.psnrCurve ?? [] }]
      ),
    ),
    samples(data),
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

function header(data: ReportData, title: string): string {
  return `<header><h1>${
    escapeHtml(title)
  }</h1><p class="sub">A dataset of optimized Stable Diffusion VAE latents · latentforge ${
    escapeHtml(data.toolVersion)
  }</p></header>`;
}

function summary(data: ReportData): string {
  const { images } = data;
  const psnr0 = median(images.map((i) => i.psnrInitial).filter(Number.isFinite));
  const psnr1 = median(images.map((i) => i.psnrFinal).filter(Number.isFinite));
  const ssim0 = median(images.map((i) => i.ssimInitial).filter(Number.isFinite));
  const ssim1 = median(images.map((i) => i.ssimFinal).filter(Number.isFinite));
  const gain = median(
    images.map((i) => i.psnrFinal - i.psnrInitial).filter(Number.isFinite),
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
        escapeHtml(images.length.toLocaleString("en-US")),
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
        escapeHtml(fmt(median(images.map((i) => i.steps)), 0)),
        escapeHtml(stopReasonsLine(images)),
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

function notes(n: ReportNotes | undefined): string {
  const skipped = n?.skipped ?? [];
  const upscaled = n?.upscaled ?? [];
  const duplicates = n?.duplicates ?? [];
  const excluded = n?.excluded ?? [];
  if (skipped.length + upscaled.length + duplicates.length + excluded.length === 0) {
    return `<section id="notes"><h2>Notes on the inputs</h2><p class="ok">No file skipped, no ` +
      `image upscaled more than ${UPSCALE_NOTE_FACTOR}×, no byte-identical images.</p></section>`;
  }
  const more = (total: number) =>
    total > MAX_NOTE_ROWS
      ? `<p class="note">and ${total - MAX_NOTE_ROWS} more (all are in manifest.json)</p>`
      : "";
  const panel = (id: string, heading: string, count: number, intro: string, table: string) =>
    `<div class="panel" id="${id}"><h3>${escapeHtml(heading)} <span class="count">${count}</span>` +
    `</h3><p class="note">${intro}</p>${table}${more(count)}</div>`;
  const rows = (cells: string[][]) =>
    `<div class="scroll"><table class="compact notes"><tbody>${
      cells.slice(0, MAX_NOTE_ROWS).map((r) =>
        `<tr>${r.map((c, k) => `<td class="${k === 0 ? "mono" : ""}">${c}</td>`).join("")}</tr>`
      ).join("")
    }</tbody></table></div>`;
  const panels: string[] = [];
  if (skipped.length) {
    panels.push(panel(
      "skipped",
      "Files not read",
      skipped.length,
      escapeHtml(
        `${counted(skipped.length, "file")} in the dataset folder ${
          skipped.length === 1 ? "was" : "were"
        } not read as images.`,
      ),
      rows(skipped.map((f) => [escapeHtml(f.path), escapeHtml(f.reason)])),
    ));
  }
  if (upscaled.length) {
    panels.push(panel(
      "upscaled",
      `Upscaled more than ${UPSCALE_NOTE_FACTOR}×`,
      upscaled.length,
      escapeHtml(
        `${counted(upscaled.length, "image")} smaller than the preprocessed size, enlarged by ` +
          `interpolation: ${upscaled.length === 1 ? "its" : "their"} latents encode blur.`,
      ),
      rows(upscaled.map((u) => [
        escapeHtml(u.id),
        escapeHtml(`${u.width}×${u.height}`),
        escapeHtml(`${fmt(u.factor, 1)}×`),
      ])),
    ));
  }
  if (duplicates.length) {
    const files = duplicates.reduce((a, g) => a + g.length, 0);
    panels.push(panel(
      "duplicates",
      "Byte-identical images",
      duplicates.length,
      escapeHtml(
        `${counted(files, "image")} in ${counted(duplicates.length, "group")} of identical files.`,
      ),
      rows(duplicates.map((g) => [escapeHtml(g.join(" = "))])),
    ));
  }
  if (excluded.length) {
    panels.push(panel(
      "excluded",
      "Left out of the dataset",
      excluded.length,
      escapeHtml(`${counted(excluded.length, "image")} left out by package.exclude.`),
      rows(excluded.map((e) => [escapeHtml(e.id), escapeHtml(e.reason)])),
    ));
  }
  return `<section id="notes"><h2>Notes on the inputs</h2><div class="grid two">${
    panels.join("")
  }</div></section>`;
}

function quality(data: ReportData): string {
  const { images } = data;
  const splitColor = new Map(
    data.splits.map((s, k) => [s.name, SPLIT_COLORS[k % SPLIT_COLORS.length]]),
  );
  const legendItems = data.splits.map((s) => ({
    label: s.name,
    color: splitColor.get(s.name)!,
  }));
  const points = (pick: (i: ReportImage) => [number, number], digits: number) =>
    images.map((i) => {
      const [x, y] = pick(i);
      return {
        x,
        y,
        color: splitColor.get(i.split) ?? "#555",
        label: `${i.id} (${i.split}): ${fmt(x, digits)} → ${fmt(y, digits)}`,
      };
    });
  const charts = [
    figure(
      histogramChart({
        title: "PSNR before and after optimization",
        xLabel: "PSNR (dB)",
        series: [
          { label: "encoder latent", color: BEFORE, values: images.map((i) => i.psnrInitial) },
          { label: "optimized latent", color: AFTER, values: images.map((i) => i.psnrFinal) },
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
      "One point per image, coloured by split; above the y = x line the optimization helped.",
    ),
    figure(
      histogramChart({
        title: "SSIM before and after optimization",
        xLabel: "SSIM",
        series: [
          { label: "encoder latent", color: BEFORE, values: images.map((i) => i.ssimInitial) },
          { label: "optimized latent", color: AFTER, values: images.map((i) => i.ssimFinal) },
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
      "One point per image, coloured by split.",
    ),
  ];
  return `<section><h2>Reconstruction quality</h2><div class="grid two">${
    charts.join("")
  }</div></section>`;
}

function optimization(data: ReportData): string {
  const { images } = data;
  const bands = lossBands(images.map((i) => i.lossCurve));
  const reasons = new Map<string, number>();
  for (const i of images) reasons.set(i.stopReason, (reasons.get(i.stopReason) ?? 0) + 1);
  const ratio = images.map((i) => i.lossFinal / i.lossInitial).filter(Number.isFinite);
  const stepsChart = histogramChart({
    title: "Steps per image",
    xLabel: "optimization steps",
    series: [{ label: "images", color: AFTER, values: images.map((i) => i.steps) }],
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
      }.`,
    )
  }${figure(stepsChart, "How many steps each image took before it stopped.")}</div>` +
    `<table class="compact"><thead><tr><th>stop reason</th><th class="num">images</th></tr></thead><tbody>${reasonRows}</tbody></table></section>`;
}

function samples(data: ReportData): string {
  const byId = new Map(data.images.map((i) => [i.id, i]));
  const cards = data.samples.slice(0, 8).map((s) => {
    const m = byId.get(s.id);
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

function stopReasonsLine(images: readonly ReportImage[]): string {
  const counts = new Map<string, number>();
  for (const i of images) counts.set(i.stopReason, (counts.get(i.stopReason) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 2).map(([r, n]) => `${n} ${r}`).join(
    " · ",
  );
}

const STYLE = `
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f7f8fa;--panel:#fff;--before:${BEFORE};--after:${AFTER}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 24px 48px}
header h1{font-size:28px;margin:0 0 4px;letter-spacing:-.01em}
.sub{color:var(--muted);margin:0 0 22px}
h2{font-size:19px;margin:34px 0 12px}
.panel h2{margin-top:0}
h2 .count{font-size:13px;background:var(--line);border-radius:10px;padding:1px 8px;vertical-align:middle;color:var(--muted)}
.grid{display:grid;gap:18px}
.grid.two{grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr))}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:14px}
.card,.panel{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:14px 16px;min-width:0}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.card .value{font-size:24px;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums;white-space:nowrap}
.card .note,.note{font-size:13px;color:var(--muted)}
.card.pair .value{font-size:20px;line-height:36px}
.nowrap{white-space:nowrap}
.card.bad .value{color:var(--before)}
.card.good .value{color:#2f855a}
.before{color:var(--before)}.after{color:var(--after)}.arrow{color:var(--muted);margin:0 6px;font-weight:400}
.grid.two>section,.grid.two>div{min-width:0}
section.grid.two{margin-top:22px}
table{border-collapse:collapse;width:100%;font-size:14px}
th{font-weight:600;text-align:left;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
tfoot td{font-weight:600;border-bottom:none}
.num{text-align:right;font-variant-numeric:tabular-nums}
.mono,.reason,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.reason{overflow-wrap:anywhere;color:#7b341e}
.scroll{max-height:360px;overflow:auto}
.wide{overflow-x:auto}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:8px}
.share{display:flex;align-items:center;gap:8px}
.meter{flex:1;height:8px;background:var(--line);border-radius:4px;overflow:hidden}
.meter div{height:100%;background:var(--after)}
.share span{font-size:13px;color:var(--muted);min-width:54px;text-align:right}
.ok{color:#2f855a}
.compact{width:auto;min-width:280px;margin-top:14px}
.panel h3{font-size:15px;margin:0 0 6px}
.panel h3 .count{font-size:12px;background:var(--line);border-radius:10px;padding:1px 8px;color:var(--muted)}
.run{background:#eef6f7;border:1px solid #cfe5e8;border-radius:10px;padding:4px 16px 16px;margin:0 0 22px}
.run h2{margin-top:14px}
.built{margin:0 0 12px}
.hit{font-size:11px;background:#e6f4f1;color:#00606f;border-radius:8px;padding:1px 7px;white-space:nowrap}
.status{font-size:11px;background:#fbe9eb;color:#9b2226;border-radius:8px;padding:1px 7px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
figure{margin:0}
.chart-panel figcaption{font-size:13px;color:var(--muted);margin-top:6px}
svg.chart{display:block;width:100%;height:auto;font-family:inherit}
svg .grid{stroke:#eef0f3}
svg .axis{stroke:#9aa5b1}
svg .tickmark{stroke:#9aa5b1}
svg .tick{font-size:11.5px;fill:#52606d}
svg .tick.inside{fill:#fff}
svg .label{font-size:12.5px;fill:#323f4b;font-weight:600}
svg .legend{font-size:12px;fill:#323f4b}
svg .note{font-size:11.5px;fill:#7b8794}
svg .diagonal{stroke:#7b8794;stroke-dasharray:5 4;stroke-width:1.2}
svg .nodata{fill:#f5f7fa;stroke:var(--line)}
.grid.samples{grid-template-columns:repeat(auto-fill,minmax(min(100%,440px),1fr))}
.sample{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:12px}
.sample h3{font-size:14px;margin:0 0 8px;display:flex;gap:8px;align-items:center}
.tag{font-size:11px;background:#e6f4f1;color:#00606f;border-radius:8px;padding:1px 8px;font-weight:500}
.triplet{display:grid;grid-template-columns:repeat(3,1fr);gap:8px}
.triplet img{width:100%;height:auto;aspect-ratio:1;object-fit:contain;display:block;border-radius:6px;background:#eee}
.triplet figcaption{font-size:12px;color:var(--muted);margin-top:4px;display:flex;justify-content:space-between;gap:4px;flex-wrap:wrap}
.triplet figcaption b{color:var(--fg);font-weight:600;font-variant-numeric:tabular-nums}
pre.config{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:14px 16px;overflow:auto;max-height:480px;margin:0}
footer{margin-top:40px;color:var(--muted);font-size:13px;text-align:center}
@media (max-width:600px){main{padding:18px 12px}.card .value{font-size:20px}}
`;

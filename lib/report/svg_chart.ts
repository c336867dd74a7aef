/**
 * Hand-written inline SVG charts for the report: overlaid histograms, a scatter with the y = x
 * line, quantile bands over steps, and horizontal bars. Each chart is a self-contained `<svg>`
 * with a viewBox, so it scales to its container and needs no script or stylesheet beyond the
 * page's font. The charts share their scales, axes, legend and empty-chart drawing, which is why
 * they are one module of a little over 400 lines.
 *
 * @module
 */

import { escapeHtml } from "./escape.ts";
import { extent, type LossBands, niceTicks } from "./stats.ts";

const WIDTH = 560;
const HEIGHT = 340;
const MARGIN = { left: 60, right: 18, top: 40, bottom: 50 };

/** A named set of values drawn in one colour. */
export interface ChartSeries {
  label: string;
  color: string;
  values: readonly number[];
}

/** One point of a scatter chart; `label` becomes its hover tooltip. */
export interface ScatterPoint {
  x: number;
  y: number;
  label: string;
  color: string;
}

interface Scale {
  (v: number): number;
  ticks: number[];
  format: (v: number) => string;
}

function linearScale(
  lo: number,
  hi: number,
  from: number,
  to: number,
  count: number,
  integer = false,
): Scale {
  const ticks = niceTicks(lo, hi, count, { integer });
  const d0 = ticks[0];
  const d1 = ticks[ticks.length - 1];
  const scale = ((v: number) => from + ((v - d0) / (d1 - d0)) * (to - from)) as Scale;
  scale.ticks = ticks;
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  scale.format = (v) => formatNumber(v, decimals);
  return scale;
}

function logScale(lo: number, hi: number, from: number, to: number): Scale {
  const e0 = Math.floor(Math.log10(lo));
  const e1 = Math.max(e0 + 1, Math.ceil(Math.log10(hi)));
  const ticks: number[] = [];
  const few = e1 - e0 <= 2;
  for (let e = e0; e <= e1; e++) {
    for (const m of few ? [1, 2, 5] : [1]) {
      const v = m * 10 ** e;
      if (v <= 10 ** e1) ticks.push(Number(v.toPrecision(6)));
    }
  }
  const scale = ((v: number) => from + ((Math.log10(v) - e0) / (e1 - e0)) * (to - from)) as Scale;
  scale.ticks = ticks;
  scale.format = (v) => v.toExponential(0).replace("e+", "e").replace(/^1e0$/, "1");
  return scale;
}

function formatNumber(v: number, decimals: number): string {
  if (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-4)) {
    return v.toExponential(1).replace("e+", "e");
  }
  return v.toLocaleString("en-US", {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
}

function svgOpen(title: string, height = HEIGHT): string {
  return `<svg class="chart" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="${
    escapeHtml(title)
  }" xmlns="http://www.w3.org/2000/svg"><title>${escapeHtml(title)}</title>`;
}

/** Grid lines, tick labels and axis titles for the plot area. */
function axes(x: Scale, y: Scale, xLabel: string, yLabel: string, height = HEIGHT): string {
  const top = MARGIN.top;
  const bottom = height - MARGIN.bottom;
  const left = MARGIN.left;
  const right = WIDTH - MARGIN.right;
  const parts: string[] = [];
  for (const t of y.ticks) {
    const py = y(t).toFixed(1);
    parts.push(
      `<line class="grid" x1="${left}" x2="${right}" y1="${py}" y2="${py}"/>`,
      `<text class="tick" x="${left - 8}" y="${py}" text-anchor="end" dominant-baseline="middle">${
        escapeHtml(y.format(t))
      }</text>`,
    );
  }
  for (const t of x.ticks) {
    const px = x(t).toFixed(1);
    parts.push(
      `<line class="tickmark" x1="${px}" x2="${px}" y1="${bottom}" y2="${bottom + 5}"/>`,
      `<text class="tick" x="${px}" y="${bottom + 18}" text-anchor="middle">${
        escapeHtml(x.format(t))
      }</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${left}" x2="${right}" y1="${bottom}" y2="${bottom}"/>`,
    `<line class="axis" x1="${left}" x2="${left}" y1="${top}" y2="${bottom}"/>`,
    `<text class="label" x="${(left + right) / 2}" y="${height - 10}" text-anchor="middle">${
      escapeHtml(xLabel)
    }</text>`,
    `<text class="label" transform="translate(16 ${(top + bottom) / 2}) rotate(-90)" ` +
      `text-anchor="middle">${escapeHtml(yLabel)}</text>`,
  );
  return parts.join("");
}

/** Swatches with labels in one row above the plot area, right-aligned. */
function legend(items: ReadonlyArray<{ label: string; color: string; kind?: "line" | "box" }>) {
  let x = WIDTH - MARGIN.right;
  const parts: string[] = [];
  for (const item of [...items].reverse()) {
    const textWidth = item.label.length * 6.6;
    x -= textWidth;
    parts.push(
      `<text class="legend" x="${x}" y="20" dominant-baseline="middle">${
        escapeHtml(item.label)
      }</text>`,
    );
    x -= 20;
    parts.push(
      item.kind === "line"
        ? `<line x1="${x}" x2="${
          x + 14
        }" y1="20" y2="20" stroke="${item.color}" stroke-width="2.5"/>`
        : `<rect x="${x}" y="14" width="14" height="12" rx="2" fill="${item.color}"/>`,
    );
    x -= 16;
  }
  return parts.join("");
}

function noData(title: string, message: string): string {
  return `${svgOpen(title)}<rect class="nodata" x="1" y="1" width="${WIDTH - 2}" height="${
    HEIGHT - 2
  }" rx="8"/><text class="label" x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle">${
    escapeHtml(message)
  }</text></svg>`;
}

/**
 * Overlaid histograms of several series on common bins (e.g. PSNR before and after). The count
 * axis has whole-number ticks; with `integer` (values that are whole numbers, such as steps),
 * bins are whole numbers wide and each holds the values from its left edge up to, not
 * including, its right edge.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const svg = histogramChart({
 *   title: "PSNR", xLabel: "PSNR (dB)",
 *   series: [{ label: "encoder", color: "#e07a5f", values: [20, 21] }],
 * });
 * assert.match(svg, /^<svg class="chart" viewBox="0 0 560 340" role="img" aria-label="PSNR"/);
 * ```
 */
export function histogramChart(
  { title, xLabel, yLabel = "images", series, bins = 24, integer = false }: {
    title: string;
    xLabel: string;
    yLabel?: string;
    series: readonly ChartSeries[];
    bins?: number;
    integer?: boolean;
  },
): string {
  const all = series.flatMap((s) => s.values.filter(Number.isFinite));
  if (all.length === 0) return noData(title, "no finite values");
  const [min, max] = extent(all);
  // Whole-number values: the largest gets a bin of its own rather than sharing the last edge.
  const edges = integer
    ? niceTicks(Math.floor(min), Math.floor(max) + 1, bins, { integer })
    : niceTicks(min, max, bins);
  const width = edges[1] - edges[0];
  const counts = series.map((s) => {
    const c = new Array(edges.length - 1).fill(0);
    for (const v of s.values) {
      if (!Number.isFinite(v)) continue;
      c[Math.min(c.length - 1, Math.max(0, Math.floor((v - edges[0]) / width)))]++;
    }
    return c as number[];
  });
  const top = Math.max(1, extent(counts.flat())[1]);
  const x = linearScale(
    edges[0],
    edges[edges.length - 1],
    MARGIN.left,
    WIDTH - MARGIN.right,
    6,
    integer,
  );
  const y = linearScale(0, top, HEIGHT - MARGIN.bottom, MARGIN.top, 5, true);
  const binText = binLabels(edges, integer);
  const parts = [svgOpen(title), axes(x, y, xLabel, yLabel)];
  series.forEach((s, k) => {
    let outline = "";
    counts[k].forEach((n, b) => {
      const x0 = x(edges[b]);
      const x1 = x(edges[b + 1]);
      const y0 = y(n);
      outline += `${b === 0 ? "M" : "L"}${x0.toFixed(1)} ${y0.toFixed(1)}H${x1.toFixed(1)}`;
      if (n === 0) return;
      parts.push(
        `<rect x="${(x0 + 0.5).toFixed(1)}" y="${y0.toFixed(1)}" width="${
          Math.max(0.5, x1 - x0 - 1).toFixed(1)
        }" height="${(y(0) - y0).toFixed(1)}" fill="${s.color}" fill-opacity="0.45">` +
          `<title>${escapeHtml(`${s.label}: ${n} ${binText(b)}`)}</title></rect>`,
      );
    });
    parts.push(`<path d="${outline}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
  });
  parts.push(legend(series.map((s) => ({ label: s.label, color: s.color }))), "</svg>");
  return parts.join("");
}

/**
 * What bin `b` of `edges` holds, written with as many decimals as its edges need (the axis's
 * ticks, a few bins apart, may need fewer): `in [17.25, 17.5)`; for whole numbers `at 60` or
 * `in 56–59`.
 */
function binLabels(edges: readonly number[], integer: boolean): (b: number) => string {
  if (integer) {
    return (b) =>
      edges[b + 1] - edges[b] === 1
        ? `at ${formatNumber(edges[b], 0)}`
        : `in ${formatNumber(edges[b], 0)}–${formatNumber(edges[b + 1] - 1, 0)}`;
  }
  let decimals = 0;
  while (decimals < 6 && edges.some((e) => Math.abs(Number(e.toFixed(decimals)) - e) > 1e-9)) {
    decimals++;
  }
  return (b) => `in [${formatNumber(edges[b], decimals)}, ${formatNumber(edges[b + 1], decimals)})`;
}

/**
 * A scatter of per-image values with the y = x line; points above it improved. Both axes share
 * one domain so that the line is the diagonal. Beyond `maxPoints` an even subsample is drawn.
 */
export function scatterChart(
  { title, xLabel, yLabel, points, legendItems = [], maxPoints = 5000 }: {
    title: string;
    xLabel: string;
    yLabel: string;
    points: readonly ScatterPoint[];
    legendItems?: ReadonlyArray<{ label: string; color: string }>;
    maxPoints?: number;
  },
): string {
  const finite = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (finite.length === 0) return noData(title, "no finite values");
  const stride = Math.max(1, Math.ceil(finite.length / maxPoints));
  const shown = finite.filter((_, i) => i % stride === 0);
  const [lo, hi] = extent(finite.flatMap((p) => [p.x, p.y]));
  const x = linearScale(lo, hi, MARGIN.left, WIDTH - MARGIN.right, 6);
  const y = linearScale(lo, hi, HEIGHT - MARGIN.bottom, MARGIN.top, 5);
  const [d0, d1] = [x.ticks[0], x.ticks[x.ticks.length - 1]];
  const parts = [svgOpen(title), axes(x, y, xLabel, yLabel)];
  parts.push(
    `<line class="diagonal" x1="${x(d0)}" y1="${y(d0)}" x2="${x(d1)}" y2="${y(d1)}"/>`,
    `<text class="note" x="${x(d1) - 6}" y="${y(d1) + 16}" text-anchor="end">y = x</text>`,
  );
  const r = shown.length > 1500 ? 2 : 3.2;
  for (const p of shown) {
    parts.push(
      `<circle cx="${x(p.x).toFixed(1)}" cy="${y(p.y).toFixed(1)}" r="${r}" fill="${p.color}" ` +
        `fill-opacity="0.7"><title>${escapeHtml(p.label)}</title></circle>`,
    );
  }
  if (stride > 1) {
    parts.push(
      `<text class="note" x="${MARGIN.left + 8}" y="${
        MARGIN.top + 12
      }">${shown.length} of ${finite.length} shown</text>`,
    );
  }
  parts.push(legend(legendItems), "</svg>");
  return parts.join("");
}

/**
 * Loss over steps across images: the median line within 25–75 % and 10–90 % bands. The y axis
 * is logarithmic when all losses are positive and span more than a factor of 20.
 */
export function bandChart(
  { title, xLabel, yLabel, bands, color = "#3d5a80" }: {
    title: string;
    xLabel: string;
    yLabel: string;
    bands: LossBands;
    color?: string;
  },
): string {
  if (bands.steps.length === 0) return noData(title, "no loss curves recorded");
  const lo = Math.min(...bands.q10);
  const hi = Math.max(...bands.q90);
  const log = lo > 0 && hi / lo > 20;
  const bottom = HEIGHT - MARGIN.bottom;
  // Steps are whole numbers: no tick at step 2.5.
  const x = linearScale(
    bands.steps[0],
    bands.steps[bands.steps.length - 1],
    MARGIN.left,
    WIDTH - MARGIN.right,
    6,
    true,
  );
  const y = log ? logScale(lo, hi, bottom, MARGIN.top) : linearScale(lo, hi, bottom, MARGIN.top, 5);
  const path = (ys: number[]) =>
    ys.map((v, i) => `${i === 0 ? "M" : "L"}${x(bands.steps[i]).toFixed(1)} ${y(v).toFixed(1)}`)
      .join("");
  const area = (upper: number[], lower: number[]) =>
    path(upper) +
    [...lower.keys()].reverse().map((i) =>
      `L${x(bands.steps[i]).toFixed(1)} ${y(lower[i]).toFixed(1)}`
    ).join("") + "Z";
  const single = bands.steps.length === 1;
  const parts = [svgOpen(title), axes(x, y, xLabel, yLabel + (log ? " (log scale)" : ""))];
  if (single) {
    const cx = x(bands.steps[0]);
    parts.push(
      `<line x1="${cx}" x2="${cx}" y1="${y(bands.q90[0])}" y2="${
        y(bands.q10[0])
      }" stroke="${color}" stroke-opacity="0.35" stroke-width="10"/>`,
      `<circle cx="${cx}" cy="${y(bands.q50[0])}" r="4" fill="${color}"/>`,
    );
  } else {
    parts.push(
      `<path d="${area(bands.q90, bands.q10)}" fill="${color}" fill-opacity="0.14"/>`,
      `<path d="${area(bands.q75, bands.q25)}" fill="${color}" fill-opacity="0.26"/>`,
      `<path d="${path(bands.q50)}" fill="none" stroke="${color}" stroke-width="2.2"/>`,
    );
  }
  const lastI = bands.steps.length - 1;
  parts.push(
    `<text class="note" x="${WIDTH - MARGIN.right - 4}" y="${MARGIN.top + 12}" text-anchor="end">${
      escapeHtml(`images at the last step: ${bands.count[lastI]}`)
    }</text>`,
    legend([
      { label: "median", color, kind: "line" },
      { label: "25–75 %", color: `${color}66` },
      { label: "10–90 %", color: `${color}26` },
    ]),
    "</svg>",
  );
  return parts.join("");
}

/**
 * Horizontal bars with the value written at each bar's end (e.g. seconds per task). A bar with
 * a `start` spans from it to `start + value` (a timeline); otherwise it starts at zero.
 */
export function barChart(
  { title, bars, xLabel, color = "#3d5a80", format = (v: number) => v.toFixed(1) }: {
    title: string;
    bars: ReadonlyArray<{ label: string; value: number; start?: number; color?: string }>;
    xLabel: string;
    color?: string;
    format?: (v: number) => string;
  },
): string {
  if (bars.length === 0) return noData(title, "nothing recorded");
  const rowHeight = 30;
  const height = MARGIN.top + MARGIN.bottom + rowHeight * bars.length;
  const left = 130;
  const right = WIDTH - 70;
  const max = Math.max(...bars.map((b) => (b.start ?? 0) + b.value), 1e-9);
  const x = linearScale(0, max, left, right, 5);
  const parts = [svgOpen(title, height)];
  const bottom = height - MARGIN.bottom;
  for (const t of x.ticks) {
    const px = x(t).toFixed(1);
    parts.push(
      `<line class="grid" x1="${px}" x2="${px}" y1="${MARGIN.top - 6}" y2="${bottom}"/>`,
      `<text class="tick" x="${px}" y="${bottom + 18}" text-anchor="middle">${
        escapeHtml(x.format(t))
      }</text>`,
    );
  }
  bars.forEach((b, i) => {
    const top = MARGIN.top + i * rowHeight;
    const x0 = x(b.start ?? 0);
    const w = Math.max(1, x((b.start ?? 0) + b.value) - x0);
    // A value that would run past the plot is written inside its bar's left end instead.
    const after = x0 + w + 6 + format(b.value).length * 6.6 <= WIDTH;
    parts.push(
      `<text class="tick" x="${left - 10}" y="${top + rowHeight / 2}" text-anchor="end" ` +
        `dominant-baseline="middle">${escapeHtml(b.label)}</text>`,
      `<rect x="${x0.toFixed(1)}" y="${top + 5}" width="${w.toFixed(1)}" height="${
        rowHeight - 10
      }" rx="3" fill="${b.color ?? color}"/>`,
      `<text class="tick${after ? "" : " inside"}" x="${
        (after ? x0 + w + 6 : x0 + 6).toFixed(1)
      }" y="${top + rowHeight / 2}" dominant-baseline="middle">${
        escapeHtml(format(b.value))
      }</text>`,
    );
  });
  parts.push(
    `<line class="axis" x1="${left}" x2="${left}" y1="${MARGIN.top - 6}" y2="${bottom}"/>`,
    `<text class="label" x="${(left + right) / 2}" y="${height - 10}" text-anchor="middle">${
      escapeHtml(xLabel)
    }</text>`,
    "</svg>",
  );
  return parts.join("");
}

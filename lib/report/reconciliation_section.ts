/**
 * The report's "Local copies" section: the reconciliation of `dataset.adopt` with the spec —
 * counts, and the ids, files and reasons behind them (rejections in full up to a cap; the
 * complete lists are in manifest.json).
 *
 * @module
 */
import type { Reconciliation } from "../dataset/reconciliation.ts";
import { escapeHtml } from "./escape.ts";

const MAX_ROWS = 200;
const MAX_IDS = 60;

/**
 * Renders the section, or `""` when no copies were adopted from.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Reconciliation } from "../dataset/reconciliation.ts";
 *
 * const r: Reconciliation = {
 *   format: "latentforge.reconciliation/1", planned: false, at: "2026-11-21T02:10:00.000Z",
 *   sources: ["/data/kaggle/archive.zip"], listing: "ab".repeat(32), files: 3,
 *   per_source: [{ source: "/data/kaggle/archive.zip", files: 3, adopted: 2 }], items: 3,
 *   counts: {
 *     adopted_bytes: 2, adopted_pixels: 0, rejected: 1, missing: 0, extra: 0, stored_before: 0,
 *   },
 *   adopted_bytes: ["0", "1"], adopted_pixels: [], missing: [], extra: [], stored_before: [],
 *   rejected: [{ id: "2", file: "archive.zip!00002.png", reason: "512×512, spec says 1024×1024" }],
 * };
 * const html = renderReconciliationSection(r);
 * assert.match(html, /512×512, spec says 1024×1024/);
 * assert.equal(renderReconciliationSection(null), "");
 * ```
 */
export function renderReconciliationSection(r: Reconciliation | null | undefined): string {
  if (!r) return "";
  const n = (x: number) => x.toLocaleString("en-US");
  const c = r.counts;
  const ids = (list: string[]) =>
    list.length === 0
      ? ""
      : `<span class="mono">${escapeHtml(list.slice(0, MAX_IDS).join(", "))}${
        list.length > MAX_IDS ? ", …" : ""
      }</span>`;
  const row = (label: string, count: number, detail: string) =>
    `<tr><td>${label}</td><td class="num">${n(count)}</td><td class="reason">${detail}</td></tr>`;
  const counts = `<table class="compact"><thead><tr><th></th><th class="num">items</th>` +
    `<th>ids</th></tr></thead><tbody>` +
    row("adopted by bytes", c.adopted_bytes, ids(r.adopted_bytes)) +
    row("adopted by pixels", c.adopted_pixels, ids(r.adopted_pixels.map((p) => p.id))) +
    row("rejected", c.rejected, ids([...new Set(r.rejected.map((x) => x.id))])) +
    row("missing", c.missing, ids(r.missing)) +
    row("extra files", c.extra, ids(r.extra)) +
    (c.stored_before ? row("in the store before", c.stored_before, ids(r.stored_before)) : "") +
    `</tbody></table>`;
  const rejected = r.rejected.length === 0 ? "" : `<h3>Rejected files</h3>` +
    `<div class="scroll"><table class="failures"><thead><tr><th>item</th><th>file</th>` +
    `<th>reason</th></tr></thead><tbody>${
      r.rejected.slice(0, MAX_ROWS).map((x) =>
        `<tr><td class="mono">${escapeHtml(x.id)}</td><td class="mono">${
          escapeHtml(x.file)
        }</td><td class="reason">${escapeHtml(x.reason)}</td></tr>`
      ).join("")
    }</tbody></table></div>${
      r.rejected.length > MAX_ROWS
        ? `<p class="note">and ${
          n(r.rejected.length - MAX_ROWS)
        } more (all are in manifest.json)</p>`
        : ""
    }`;
  return `<section><h2>Local copies</h2><p class="note">${n(r.items)} spec items reconciled with ${
    r.sources.map((s) => `<span class="mono">${escapeHtml(s)}</span>`).join(", ")
  } (${n(r.files)} files); ${n(c.adopted_bytes + c.adopted_pixels)} adopted instead of ` +
    `downloaded: ${
      r.per_source.map((s) =>
        `${n(s.adopted)} from <span class="mono">${escapeHtml(s.source)}</span>`
      ).join(", ")
    }.</p>${counts}${rejected}</section>`;
}

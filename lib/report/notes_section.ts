/**
 * The report's notes on the inputs: the files of a dataset folder that were not read, the
 * images enlarged more than 2×, the groups of byte-identical images and what `package.exclude`
 * left out (the first 200 of each; manifest.json holds them all).
 *
 * @module
 */
import { type InputNotes, UPSCALE_NOTE_FACTOR } from "../dataset/input_notes.ts";
import { escapeHtml } from "./escape.ts";
import { counted, fixed as fmt } from "./format.ts";

/**
 * What the inputs held that a user should know about (see input_notes.ts), plus the files of a
 * dataset folder that were not read; every list may be empty.
 */
export interface ReportNotes extends InputNotes {
  skipped: { path: string; reason: string }[];
}

const MAX_NOTE_ROWS = 200;

/**
 * The notes section of the report (saying there is nothing to note when the lists are empty).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const html = notesSection({
 *   skipped: [{ path: "Thumbs.db", reason: "not an image by extension" }],
 *   upscaled: [], duplicates: [], excluded: [],
 * });
 * assert.match(html, /Files not read <span class="count">1<\/span>/);
 * assert.match(notesSection(undefined), /No file skipped/);
 * ```
 */
export function notesSection(n: ReportNotes | undefined): string {
  const skipped = n?.skipped ?? [];
  const upscaled = n?.upscaled ?? [];
  const duplicates = n?.duplicates ?? [];
  const excluded = n?.excluded ?? [];
  const missing = n?.classes_missing ?? [];
  if (
    skipped.length + upscaled.length + duplicates.length + excluded.length + missing.length === 0
  ) {
    return `<section id="notes"><h2>Notes on the inputs</h2><p class="ok">No file skipped, no ` +
      `image upscaled more than ${UPSCALE_NOTE_FACTOR}×, no byte-identical images.</p></section>`;
  }
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
  if (missing.length) {
    panels.push(panel(
      "classes-missing",
      "Classes missing from a split",
      missing.length,
      escapeHtml(`${counted(missing.length, "class", "classes")} with images in some splits only.`),
      rows(missing.map((m) => [escapeHtml(m.class), escapeHtml(`none in ${m.absent.join(", ")}`)])),
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

function more(total: number): string {
  return total > MAX_NOTE_ROWS
    ? `<p class="note">and ${total - MAX_NOTE_ROWS} more (all are in manifest.json)</p>`
    : "";
}

function panel(id: string, heading: string, count: number, intro: string, table: string): string {
  return `<div class="panel" id="${id}"><h3>${
    escapeHtml(heading)
  } <span class="count">${count}</span>` +
    `</h3><p class="note">${intro}</p>${table}${more(count)}</div>`;
}

function rows(cells: string[][]): string {
  return `<div class="scroll"><table class="compact notes"><tbody>${
    cells.slice(0, MAX_NOTE_ROWS).map((r) =>
      `<tr>${r.map((c, k) => `<td class="${k === 0 ? "mono" : ""}">${c}</td>`).join("")}</tr>`
    ).join("")
  }</tbody></table></div>`;
}

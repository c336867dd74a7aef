/**
 * The report's run section: the facts of the run that built the dataset (the date, and per task
 * its wall time, its items' time summed, ran / cached / failed counts and items per second),
 * between two marker comments. It is the only part of the report that differs between two runs
 * that build the same dataset, so byte-identity checks cut it out with {@link withoutRunSection}.
 *
 * `package` stores the report with the section saying no run was recorded; publishing puts the
 * facts in ({@link withRunSection}), from the run that built the dataset, also on a later cache
 * hit, so the published report is the same every time. Publishing adds what the run was made
 * with ({@link RunMadeWith}): the latentforge version, the run's `--limit` and the model files.
 *
 * @module
 */
import type { RunFacts, TaskFacts } from "../dag/run_facts.ts";
import { escapeHtml } from "./escape.ts";
import { counted, fixed, formatDuration, formatTime } from "./format.ts";
import { barChart } from "./svg_chart.ts";

/** The comment that opens the run section. */
export const RUN_SECTION_BEGIN = "<!-- latentforge:run-facts:begin -->";
/** The comment that closes the run section. */
export const RUN_SECTION_END = "<!-- latentforge:run-facts:end -->";

/** What made the dataset beside the run's own facts, as publishing states it. */
export interface RunMadeWith {
  /** The latentforge version. */
  version: string;
  /** The `--limit` the dataset was built with, or null without one. */
  limit: number | null;
}

/** The facts a run section states: the run's, and (when publishing) what made the dataset. */
export type StatedRun = RunFacts & { made_with?: RunMadeWith };

/** Raised when a report does not hold exactly one run section. */
export class RunSectionError extends Error {
  override readonly name = "RunSectionError";
}

/**
 * The run section, markers included; `null` facts say that the run was not recorded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const html = renderRunSection(null);
 * assert.equal(html.startsWith(RUN_SECTION_BEGIN), true);
 * ```
 */
export function renderRunSection(facts: StatedRun | null): string {
  return `${RUN_SECTION_BEGIN}\n${facts ? section(facts) : unrecorded()}\n${RUN_SECTION_END}`;
}

/**
 * `html` with its run section replaced by one stating `facts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const page = `<main>${renderRunSection(null)}</main>`;
 * assert.equal(withRunSection(page, null), page);
 * ```
 */
export function withRunSection(html: string, facts: StatedRun | null): string {
  const [begin, end] = bounds(html);
  return html.slice(0, begin) + renderRunSection(facts) + html.slice(end);
}

/**
 * `html` with its run section cut out (markers kept), for comparing two reports of the same
 * dataset byte for byte.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const page = `<main>${renderRunSection(null)}</main>`;
 * assert.equal(
 *   withoutRunSection(page),
 *   "<main><!-- latentforge:run-facts:begin --><!-- latentforge:run-facts:end --></main>",
 * );
 * ```
 */
export function withoutRunSection(html: string): string {
  const [begin, end] = bounds(html);
  return html.slice(0, begin) + RUN_SECTION_BEGIN + RUN_SECTION_END + html.slice(end);
}

function bounds(html: string): [number, number] {
  const begin = html.indexOf(RUN_SECTION_BEGIN);
  const end = html.indexOf(RUN_SECTION_END);
  const again = html.indexOf(RUN_SECTION_BEGIN, begin + 1);
  if (begin < 0 || end < begin || again >= 0 || html.indexOf(RUN_SECTION_END, end + 1) >= 0) {
    throw new RunSectionError(
      `report: expected one run section (${RUN_SECTION_BEGIN} … ${RUN_SECTION_END}), found ${
        begin < 0 ? "none" : "a malformed or repeated one"
      }`,
    );
  }
  return [begin, end + RUN_SECTION_END.length];
}

function unrecorded(): string {
  return `<section id="run" class="run"><h2>The run that built this dataset</h2>` +
    `<p class="note">Not recorded: the run that built this dataset kept no facts about itself ` +
    `(a cache written by an older latentforge). Rebuilding the dataset records them.</p></section>`;
}

/**
 * `Made by latentforge 0.1.0 with --limit 8 (the first 8 items), from model.encoder
 * ../models/vae_encoder.onnx, …`: the version and limit publishing states, and the files the
 * run's config named.
 */
function madeWith(facts: StatedRun): string {
  const made = facts.made_with;
  const files = Object.entries(facts.inputs ?? {}).map(([field, file]) =>
    `${escapeHtml(field)} <code>${escapeHtml(file)}</code>`
  );
  if (!made && files.length === 0) return "";
  const limit = !made
    ? ""
    : made.limit === null
    ? ` with no <code>--limit</code> (every item)`
    : ` with <code>--limit ${made.limit}</code> (the first ${
      escapeHtml(counted(made.limit, "item"))
    })`;
  const by = made ? `Made by latentforge ${escapeHtml(made.version)}${limit}` : "Made";
  return `<p class="made">${by}${files.length ? `, from ${files.join(", ")}` : ""}.</p>`;
}

function section(facts: StatedRun): string {
  const ran = facts.tasks.filter((t) => t.ran > 0);
  const hits = facts.tasks.filter((t) => t.cache_hit);
  const summary =
    `Built <time datetime="${escapeHtml(facts.built)}">${
      escapeHtml(formatTime(facts.built))
    }</time> by run ${facts.run}, ${escapeHtml(formatDuration(facts.seconds))} after it started ` +
    `(${escapeHtml(formatTime(facts.started))}). ${
      escapeHtml(counted(ran.length, "task"))
    } did work in it; ${escapeHtml(counted(hits.length, "task"))} ${
      hits.length === 1 ? "was" : "were"
    } served entirely from the cache${
      hits.length ? ` (${hits.map((t) => escapeHtml(t.task)).join(", ")})` : ""
    }.`;
  const rows = facts.tasks.map((t) => row(t)).join("");
  const chart = barChart({
    title: "When each task ran",
    xLabel: "seconds after the run started",
    bars: facts.tasks.map((t) => ({
      label: t.task,
      start: t.start_s ?? 0,
      value: t.wall_s ?? 0,
      color: t.cache_hit ? HIT_COLOR : undefined,
    })),
    format: formatDuration,
  });
  return `<section id="run" class="run"><h2>The run that built this dataset</h2>` +
    `<p class="built">${summary}</p>${madeWith(facts)}` +
    `<div class="grid two"><div class="panel">` +
    `<div class="wide"><table class="tasks"><thead><tr><th>task</th><th class="num">wall time</th>` +
    `<th class="num">item time, summed</th><th class="num">ran</th><th class="num">cached</th>` +
    `<th class="num">failed</th><th class="num">items/s</th></tr></thead><tbody>${rows}</tbody>` +
    `</table></div><p class="note">Wall time: from the task's start to its end in this run. Item ` +
    `time, summed: the durations of the items it ran, added up — items run side by side, so ` +
    `this exceeds the wall time; it is not the run's length. Items/s: items run per second of ` +
    `wall time. <span class="hit">cache hit</span>: nothing of the task ran, every item came ` +
    `from the cache. The same facts are in <code>run.json</code>.</p></div>` +
    `<figure class="panel chart-panel">${chart}<figcaption>Each task from its start to its end; ` +
    `tasks overlap, since items flow from one task to the next. Pale: a cache hit.` +
    `</figcaption></figure></div>` +
    `</section>`;
}

const HIT_COLOR = "#9fc9cf";

function row(t: TaskFacts): string {
  const num = (v: string) => `<td class="num">${v}</td>`;
  const mark = t.cache_hit ? ` <span class="hit">cache hit</span>` : "";
  const status = t.status === "ok" || t.status === "running"
    ? ""
    : ` <span class="status">${escapeHtml(t.status)}</span>`;
  return `<tr data-task="${escapeHtml(t.task)}" data-cache-hit="${t.cache_hit}"><td>${
    escapeHtml(t.task)
  }${mark}${status}</td>` +
    num(t.wall_s === null ? "–" : escapeHtml(formatDuration(t.wall_s))) +
    num(t.item_s === null || t.ran === 0 ? "–" : escapeHtml(formatDuration(t.item_s))) +
    num(t.ran.toLocaleString("en-US")) + num(t.cached.toLocaleString("en-US")) +
    num(t.failed.toLocaleString("en-US")) +
    num(t.items_per_s === null ? "–" : escapeHtml(fixed(t.items_per_s, rate(t.items_per_s)))) +
    `</tr>`;
}

function rate(v: number): number {
  return v >= 100 ? 0 : v >= 1 ? 1 : 2;
}

/**
 * The closing summary of every run: what was published where (images, complete or partial),
 * which items failed with their one-line reasons (the first ten, and how many in all), the
 * report's path and the wall time — or, after an interrupt, what was finished and how to resume.
 * It is read from the run's result and the dataset's own record, so it says what the run did,
 * not what it meant to do.
 *
 * @module
 */
import type { RunResult } from "../dag/plan.ts";
import { formatSeconds } from "../dag/progress.ts";
import { type PackageMeta, publishedFolder } from "../package/publish_dataset.ts";
import { AGGREGATE_ITEM } from "../store/records.ts";

/** Failures shown one per line; the rest are counted. */
const SHOWN_FAILURES = 10;

/** What the closing summary says (also the `summary` JSON event). */
export interface ClosingSummary {
  event: "summary";
  status: RunResult["status"];
  exitCode: number;
  seconds: number;
  /** The dataset this run published (built or from the cache), if it published one. */
  published?: {
    dir: string;
    images: number;
    splits: number;
    /** Why it is partial (`--limit 8`); absent for a complete dataset. */
    partial?: string;
    report?: string;
  };
  /** Why nothing was published, when nothing was. */
  unpublished?: string;
  /** Items that failed, each where it first failed: the first ten. */
  failures: { id: string; task: string; reason: string }[];
  /** How many items failed in all. */
  failed: number;
  /** Tasks that failed as a whole (a count check, a model that cannot be read). */
  taskFailures: { task: string; reason: string }[];
  /** After an interrupt: the tasks that finished every item. */
  finished?: string[];
  /**
   * After an interrupt: the tasks that did not (`done` items finished or cached of `total`,
   * known so far; `failed` of them failed), in the order they ran.
   */
  unfinished?: { task: string; done: number; total: number; failed: number }[];
}

/**
 * The closing summary of run `result` of the tasks `order` (in the order they ran), which took
 * `seconds`; `outDir` is the dataset's `package.out_dir` (undefined for a pipeline without one).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const result = { run: 1, status: "ok" as const, exitCode: 0, tasks: new Map() };
 * const summary = await closingSummary(result, [], 2.5, undefined);
 * assert.deepEqual(summaryLines(summary), ["nothing published: no task publishes a dataset", "done in 2.5s"]);
 * ```
 */
export async function closingSummary(
  result: RunResult,
  order: readonly string[],
  seconds: number,
  outDir: string | undefined,
): Promise<ClosingSummary> {
  const summary: ClosingSummary = {
    event: "summary",
    status: result.status,
    exitCode: result.exitCode,
    seconds,
    failures: [],
    failed: 0,
    taskFailures: [],
  };
  const seen = new Set<string>();
  for (const task of order) {
    const t = result.tasks.get(task);
    if (!t) continue;
    for (const [id, reason] of t.failures) {
      // An item is named once, where it first failed; downstream it never arrived.
      if (seen.has(id)) continue;
      seen.add(id);
      summary.failed++;
      if (summary.failures.length < SHOWN_FAILURES) summary.failures.push({ id, task, reason });
    }
    if ((t.status === "failed" || t.status === "blocked") && t.reason) {
      summary.taskFailures.push({ task, reason: t.reason });
    }
  }
  if (result.status === "interrupted") {
    summary.finished = [];
    summary.unfinished = [];
    for (const task of order) {
      const c = result.tasks.get(task)?.counts;
      if (!c) continue;
      const done = c.ran + c.cached;
      // A task that never started has no items: it did not finish.
      if (c.final && c.total > 0 && done === c.total) summary.finished.push(task);
      else summary.unfinished.push({ task, done, total: c.total, failed: c.failed });
    }
  }
  await describePublished(summary, result, outDir);
  return summary;
}

/** Fills in the dataset the run published, or why it published none. */
async function describePublished(
  summary: ClosingSummary,
  result: RunResult,
  outDir: string | undefined,
): Promise<void> {
  const pkg = result.tasks.get("package");
  if (!pkg || outDir === undefined) {
    summary.unpublished = outDir === undefined || result.tasks.size === 0
      ? "no task publishes a dataset"
      : `package is not among the tasks run (${[...result.tasks.keys()].join(", ")})`;
    return;
  }
  const record = await pkg.record(AGGREGATE_ITEM);
  // Only the record of this run's decision describes what was published now.
  if (pkg.status !== "ok" || !record || pkg.keys.get(AGGREGATE_ITEM) !== record.key) {
    summary.unpublished = pkg.status === "ok" ? "package did not run" : `package ${pkg.status}`;
    return;
  }
  const meta = record.meta as unknown as PackageMeta;
  const { dir, partial } = await publishedFolder(outDir, meta);
  summary.published = {
    dir,
    images: Object.values(meta.counts).reduce((a, b) => a + b, 0),
    splits: Object.keys(meta.counts).length,
    ...(partial === undefined ? {} : { partial }),
    ...("report.html" in record.objects ? { report: `${dir}/report.html` } : {}),
  };
}

/**
 * The summary as the lines printed after the run's last progress line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const lines = summaryLines({
 *   event: "summary", status: "failed", exitCode: 1, seconds: 23.6,
 *   published: { dir: "/data/out/photos", images: 8, splits: 1, report: "/data/out/photos/report.html" },
 *   failures: [{ id: "bad", task: "fetch-images", reason: "bad.jpg is empty (0 bytes)" }],
 *   failed: 1, taskFailures: [],
 * });
 * assert.deepEqual(lines, [
 *   "published 8 images (1 split) to /data/out/photos: a complete dataset without the 1 image that failed",
 *   "1 item failed:",
 *   "  bad (fetch-images): bad.jpg is empty (0 bytes)",
 *   "report: /data/out/photos/report.html",
 *   "failed in 23.6s (exit code 1: the other items are built and cached)",
 * ]);
 * ```
 */
export function summaryLines(s: ClosingSummary): string[] {
  const lines: string[] = [];
  const p = s.published;
  if (p) {
    const what = `published ${plural(p.images, "image")} (${
      plural(p.splits, "split")
    }) to ${p.dir}`;
    const state = p.partial !== undefined
      ? `a partial dataset (${p.partial})`
      : s.failed > 0
      ? `a complete dataset without the ${plural(s.failed, "image")} that failed`
      : "a complete dataset";
    lines.push(`${what}: ${state}`);
  } else lines.push(`nothing published: ${s.unpublished}`);
  for (const f of s.taskFailures) lines.push(`${f.task} failed: ${f.reason}`);
  if (s.failed > 0) {
    lines.push(`${plural(s.failed, "item")} failed:`);
    for (const f of s.failures) lines.push(`  ${f.id} (${f.task}): ${oneLine(f.reason)}`);
    const more = s.failed - s.failures.length;
    if (more > 0) {
      lines.push(`  … and ${more} more (all of them: deno task status --json, manifest.json)`);
    }
  }
  if (p?.report) lines.push(`report: ${p.report}`);
  lines.push(ending(s));
  return lines;
}

function ending(s: ClosingSummary): string {
  const took = formatSeconds(s.seconds);
  if (s.status === "interrupted") {
    const unfinished = (s.unfinished ?? []).map((u) =>
      u.total === 0
        ? u.task
        : `${u.task} ${u.done}/${u.total}${u.failed ? ` (${u.failed} failed)` : ""}`
    );
    const finished = s.finished?.length ? `; finished: ${s.finished.join(", ")}` : "";
    return `interrupted after ${took}${finished}` +
      (unfinished.length ? `; not finished: ${unfinished.join(", ")}` : "") +
      `. Run the same command again to resume: what finished is cached, and optimize goes on ` +
      `from its checkpoints`;
  }
  if (s.exitCode === 0) return `done in ${took}`;
  if (s.exitCode === 1) {
    return `failed in ${took} (exit code 1: the other items are built and cached)`;
  }
  return `failed in ${took} (exit code ${s.exitCode})`;
}

function plural(n: number, noun: string): string {
  return `${n.toLocaleString("en-US")} ${noun}${n === 1 ? "" : "s"}`;
}

/** A reason on one line: the first line of a longer one. */
function oneLine(reason: string): string {
  const first = reason.split("\n")[0];
  return first.length > 300 ? `${first.slice(0, 300)}…` : first;
}

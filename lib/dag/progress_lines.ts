/**
 * The text of the progress displays: one line per event worth a line, the counts of a task,
 * its steps, and how times and durations are written. The terminal, the plain log and the
 * heartbeats all write these, so they say the same things the same way.
 *
 * @module
 */
import type { RunEvent, TaskCounts } from "./events.ts";
import type { StepFigures } from "./progress_steps.ts";

/**
 * The log line of `event` at clock time `now`, or null for an event that prints nothing;
 * `plan` says the run is a plan (its last line then says nothing ran).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const end = { event: "run-end", run: 7, status: "ok", exitCode: 0, seconds: 0.01 } as const;
 * const at = Date.UTC(2026, 0, 1, 6, 27, 40);
 * assert.equal(describeEvent(end, at, false), "06:27:40 run 7 ok in 0.0s");
 * assert.equal(describeEvent(end, at, true), "06:27:40 plan 7 (nothing run)");
 * ```
 */
export function describeEvent(event: RunEvent, now: number, plan: boolean): string | null {
  const at = stamp(now);
  switch (event.event) {
    case "run-start":
      return `${at} ${event.dryRun ? "plan" : "run"} ${event.run}: ${event.tasks.join(" → ")}`;
    case "task-start":
    case "plan":
      return null;
    case "item":
      return event.status === "failed"
        ? `${at} ${event.task} ${event.item} failed: ${event.reason}`
        : null;
    case "retry":
      return `${at} ${event.task} ${event.item} retry ${event.attempt} in ${
        formatSeconds(event.delayMs / 1000)
      }: ${event.reason}`;
    case "log":
      return `${at} ${event.task}: ${event.message}`;
    case "task-end":
      return `${at} ${taskEndText(event)}`;
    case "run-end":
      if (plan) {
        return `${at} plan ${event.run}${event.status === "ok" ? "" : " failed"} (nothing run)`;
      }
      return `${at} run ${event.run} ${event.status} in ${formatSeconds(event.seconds)}`;
  }
}

function taskEndText(event: Extract<RunEvent, { event: "task-end" }>): string {
  const why = event.reason ? ` — ${event.reason}` : "";
  let text = `${event.task} ${event.status}: ${countsText(event.counts)}${why}`;
  if (event.wouldRun) {
    for (const [reason, n] of Object.entries(event.wouldRun)) {
      text += `\n    would run ${n}: ${reason}`;
    }
  }
  if (event.unlisted) text += `\n    may run all: its items are ${event.unlisted}`;
  for (const [reason, n] of Object.entries(event.mayRun ?? {})) {
    text += `\n    may run ${n}: ${reason}`;
  }
  const r = event.remote;
  if (r) {
    const tasks = (n: number) => `${n} array task${n === 1 ? "" : "s"}`;
    text += `\n    on ${r.executor}: ${r.actions} as ${tasks(r.shards)}` +
      (r.upTo === undefined ? "" : ` (${tasks(r.upTo)} if those that may run do)`);
  }
  return text;
}

/**
 * `8/64 (8 ran, 0 cached)`, with failures when there are any and `+` while the total grows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const counts = { total: 64, ran: 8, cached: 0, failed: 1, final: false };
 * assert.equal(countsText(counts), "9/64+ (8 ran, 0 cached, 1 failed)");
 * ```
 */
export function countsText(c: TaskCounts): string {
  const parts = [`${c.ran} ran`, `${c.cached} cached`];
  if (c.failed) parts.push(`${c.failed} failed`);
  return `${c.ran + c.cached + c.failed}/${c.total}${c.final ? "" : "+"} (${parts.join(", ")})`;
}

/**
 * A task whose items report steps: `3/8 images · step 412/480 · 9.1 steps/s · eta 7s`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const counts = { total: 8, ran: 3, cached: 0, failed: 0, final: true };
 * assert.equal(
 *   stepsText(counts, { done: 412, total: 480, rate: 9.1, eta: 7.4 }),
 *   "3/8 images · step 412/480 · 9.1 steps/s · eta 7.4s",
 * );
 * ```
 */
export function stepsText(c: TaskCounts, f: StepFigures): string {
  const images = `${c.ran + c.cached + c.failed}/${c.total}${c.final ? "" : "+"} images`;
  const failed = c.failed ? ` (${c.failed} failed)` : "";
  const rate = `${f.rate.toFixed(f.rate < 10 ? 1 : 0)} steps/s`;
  const eta = f.eta === undefined ? "" : ` · eta ${formatSeconds(f.eta)}`;
  return `${images}${failed} · step ${f.done}/${f.total}${c.final ? "" : "+"} · ${rate}${eta}`;
}

/** The time of day of a log line (UTC): `06:27:40`. */
export function stamp(now: number): string {
  return new Date(now).toISOString().slice(11, 19);
}

/**
 * "1h02m", "3m05s", "4.2s".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatSeconds(4.23), "4.2s");
 * assert.equal(formatSeconds(185), "3m05s");
 * assert.equal(formatSeconds(119.6), "2m00s");
 * assert.equal(formatSeconds(3720), "1h02m");
 * ```
 */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 59.95) return `${s.toFixed(1)}s`;
  // Rounded first, so 119.6 s is 2m00s, not 1m60s.
  const whole = Math.round(s);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * Five-field cron expressions (minute hour day-of-month month day-of-week, UTC), read by croner:
 * enough to tell when a schedule last fired, so a run missed while the machine was off can be
 * caught up. As in standard cron, when both day fields are restricted either may match.
 *
 * @module
 */
import { Cron } from "croner";

/** Raised for a malformed cron expression; the message names the field and what was found. */
export class CronError extends Error {
  override readonly name = "CronError";
  /** A bad invocation (exit code 2): nothing was done. */
  readonly exitCode = 2;
}

const FIELDS: [string, number, number][] = [
  ["minute", 0, 59],
  ["hour", 0, 23],
  ["day of month", 1, 31],
  ["month", 1, 12],
  ["day of week", 0, 7],
];

/** How far back {@link previousFire} looks. */
const YEAR_MS = 366 * 24 * 3600 * 1000;

/**
 * Reads a five-field expression, or throws {@link CronError} naming the field at fault.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const next = parseCron("0 3 * * *").nextRun(new Date("2026-01-02T10:00:00Z"));
 * assert.equal(next?.toISOString(), "2026-01-03T03:00:00.000Z");
 * assert.throws(() => parseCron("61 3 * * *"), /minute must be within 0-59, found "61"/);
 * ```
 */
export function parseCron(expr: string): Cron {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5) {
    throw new CronError(
      `cron "${expr}": expected 5 fields (minute hour day month weekday), found ${parts.length}`,
    );
  }
  try {
    return new Cron(expr, { timezone: "UTC", mode: "5-part", paused: true });
  } catch (e) {
    // croner words its errors for its own syntax; name the field in the user's terms instead.
    if (!isCronerRefusal(e)) throw e;
    throw new CronError(`cron "${expr}": ${fieldProblem(parts)}`);
  }
}

/**
 * The latest time at or before `now` when the schedule fired, or null if none in the last year.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const fired = previousFire("0 3 * * *", new Date("2026-01-02T10:00:00Z"));
 * assert.equal(fired?.toISOString(), "2026-01-02T03:00:00.000Z");
 * ```
 */
export function previousFire(expr: string, now: Date): Date | null {
  const cron = parseCron(expr);
  // croner looks strictly before its reference; a fire at `now` itself counts.
  const reference = new Date(now.getTime() + 1000);
  const fired = cron.previousRuns(2, reference).find((d) => d.getTime() <= now.getTime());
  return fired && now.getTime() - fired.getTime() <= YEAR_MS ? fired : null;
}

/** Which field of an expression croner refused, and why, as far as the numbers tell. */
function fieldProblem(parts: string[]): string {
  for (const [i, part] of parts.entries()) {
    const probe = ["0", "0", "1", "1", "*"];
    probe[i] = part;
    try {
      new Cron(probe.join(" "), { timezone: "UTC", mode: "5-part", paused: true });
      continue;
    } catch (e) {
      // This field is the one croner refused.
      if (!isCronerRefusal(e)) throw e;
      const [name, lo, hi] = FIELDS[i];
      const numbers = /^[\d,\-\/*]+$/.test(part) ? (part.match(/\d+/g) ?? []).map(Number) : null;
      if (numbers?.some((n) => n < lo || n > hi)) {
        return `${name} must be within ${lo}-${hi}, found "${part}"`;
      }
      return `cannot read ${name} field "${part}"`;
    }
  }
  return "cannot read the expression";
}

/** How croner refuses a pattern: a TypeError for what it cannot read, a RangeError for a value. */
function isCronerRefusal(e: unknown): boolean {
  return e instanceof TypeError || e instanceof RangeError;
}

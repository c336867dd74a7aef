/**
 * Five-field cron expressions (minute hour day-of-month month day-of-week, UTC): enough to tell
 * when a schedule last fired, so a run missed while the machine was off can be caught up.
 *
 * @module
 */

/** Raised for a malformed cron expression. */
export class CronError extends Error {
  override readonly name = "CronError";
}

interface Fields {
  minute: Set<number>;
  hour: Set<number>;
  dom: Set<number>;
  month: Set<number>;
  dow: Set<number>;
  domStar: boolean;
  dowStar: boolean;
}

const RANGES: [string, number, number][] = [
  ["minute", 0, 59],
  ["hour", 0, 23],
  ["day of month", 1, 31],
  ["month", 1, 12],
  ["day of week", 0, 7],
];

/** Parses "0 3 * * *" style expressions (lists, ranges, steps). */
export function parseCron(expr: string): Fields {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5) {
    throw new CronError(
      `cron "${expr}": expected 5 fields (minute hour day month weekday), found ${parts.length}`,
    );
  }
  const sets = parts.map((part, i) => parseField(part, RANGES[i], expr));
  const dow = new Set([...sets[4]].map((d) => d % 7));
  return {
    minute: sets[0],
    hour: sets[1],
    dom: sets[2],
    month: sets[3],
    dow,
    domStar: parts[2] === "*",
    dowStar: parts[4] === "*",
  };
}

function parseField(part: string, [name, lo, hi]: [string, number, number], expr: string) {
  const out = new Set<number>();
  for (const piece of part.split(",")) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(piece);
    if (!m) throw new CronError(`cron "${expr}": cannot read ${name} field "${part}"`);
    const start = m[1] === "*" ? lo : Number(m[2]);
    const end = m[1] === "*" ? hi : m[3] !== undefined ? Number(m[3]) : m[4] ? hi : start;
    const step = m[4] ? Number(m[4]) : 1;
    if (start < lo || end > hi || start > end || step < 1) {
      throw new CronError(`cron "${expr}": ${name} must be within ${lo}-${hi}, found "${piece}"`);
    }
    for (let v = start; v <= end; v += step) out.add(v);
  }
  return out;
}

function matches(f: Fields, d: Date): boolean {
  if (!f.minute.has(d.getUTCMinutes()) || !f.hour.has(d.getUTCHours())) return false;
  if (!f.month.has(d.getUTCMonth() + 1)) return false;
  const dom = f.dom.has(d.getUTCDate());
  const dow = f.dow.has(d.getUTCDay());
  // Standard cron: when both day fields are restricted, either may match.
  if (!f.domStar && !f.dowStar) return dom || dow;
  return (f.domStar || dom) && (f.dowStar || dow);
}

/**
 * The latest time at or before `now` when the schedule fired, or null if none in the last year.
 *
 * @example
 * ```ts
 * previousFire("0 3 * * *", new Date("2026-01-02T10:00:00Z")); // 2026-01-02T03:00:00Z
 * ```
 */
export function previousFire(expr: string, now: Date): Date | null {
  const f = parseCron(expr);
  const t = new Date(now);
  t.setUTCSeconds(0, 0);
  const stop = now.getTime() - 366 * 24 * 3600 * 1000;
  while (t.getTime() >= stop) {
    if (!f.month.has(t.getUTCMonth() + 1) || !dayMatches(f, t)) {
      t.setUTCHours(0, 0, 0, 0);
      t.setUTCMinutes(-1);
      continue;
    }
    if (!f.hour.has(t.getUTCHours())) {
      t.setUTCMinutes(0, 0, 0);
      t.setUTCMinutes(-1);
      continue;
    }
    if (matches(f, t)) return new Date(t);
    t.setUTCMinutes(t.getUTCMinutes() - 1);
  }
  return null;
}

function dayMatches(f: Fields, d: Date): boolean {
  const dom = f.dom.has(d.getUTCDate());
  const dow = f.dow.has(d.getUTCDay());
  if (!f.domStar && !f.dowStar) return dom || dow;
  return (f.domStar || dom) && (f.dowStar || dow);
}

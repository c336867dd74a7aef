/**
 * How the report writes numbers, durations, times and counted nouns.
 *
 * @module
 */

/**
 * `v` with `digits` decimals, or "–" when it is not finite.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(fixed(3.14159, 2), "3.14");
 * ```
 */
export function fixed(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : "–";
}

/**
 * `v` with an explicit sign (a real minus sign), or "–" when it is not finite.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(signed(-0.5, 1), "−0.5");
 * ```
 */
export function signed(v: number, digits: number): string {
  return Number.isFinite(v) ? `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(digits)}` : "–";
}

/**
 * A duration for people: "0.84 s", "12.3 s", "3 min 5 s", "2 h 41 min".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatDuration(185), "3 min 5 s");
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "–";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds - 60 * m)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/**
 * An ISO 8601 time as "2026-11-21 02:10:00 UTC"; text that is not a time is returned as is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatTime("2026-11-21T02:10:00.000Z"), "2026-11-21 02:10:00 UTC");
 * ```
 */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime())
    ? iso
    : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/**
 * A count with its noun in the right number: "1 split", "3 splits", "1,204 images".
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(counted(1, "image"), "1 image");
 * assert.equal(counted(2, "copy", "copies"), "2 copies");
 * ```
 */
export function counted(n: number, singular: string, plural = `${singular}s`): string {
  return `${n.toLocaleString("en-US")} ${n === 1 ? singular : plural}`;
}

/**
 * Escaping for text placed in HTML or SVG, as element content or a quoted attribute value.
 *
 * @module
 */

const ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/**
 * Escapes `& < > " '` so any text is safe as element content or a quoted attribute value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   escapeHtml(`<img src=x onerror="alert(1)">`),
 *   "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;",
 * );
 * ```
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

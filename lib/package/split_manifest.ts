/**
 * A split's `manifest.txt`: the source path of every image, one per line, in the order of the
 * split's arrays.
 *
 * @module
 */

/**
 * The text of `manifest.txt` for the source paths of one split. A backslash, carriage return or
 * line feed in a path is written `\\`, `\r`, `\n`, so every image is exactly one line whatever
 * its file name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(manifestText(["train/a.png", "odd\nname.png"]), "train/a.png\nodd\\nname.png\n");
 * ```
 */
export function manifestText(paths: readonly string[]): string {
  return paths.map((path) =>
    path.replace(/[\\\r\n]/g, (c) => c === "\\" ? "\\\\" : c === "\r" ? "\\r" : "\\n") + "\n"
  ).join("");
}

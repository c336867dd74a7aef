/**
 * A split's `manifest.txt`: the source path of every image, one per line, in the order of the
 * split's arrays.
 *
 * @module
 */

/**
 * The line of `manifest.txt` for one source path. A backslash, carriage return or line feed in
 * a path is written `\\`, `\r`, `\n`, so every image is exactly one line whatever its file name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(manifestLine("train/a.png"), "train/a.png\n");
 * assert.equal(manifestLine("odd\nname.png"), "odd\\nname.png\n");
 * ```
 */
export function manifestLine(path: string): string {
  return path.replace(/[\\\r\n]/g, (c) => c === "\\" ? "\\\\" : c === "\r" ? "\\r" : "\\n") + "\n";
}

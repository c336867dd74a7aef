/**
 * Printing a command's answer on stdout.
 *
 * @module
 */

/**
 * Writes a whole text and a line break to stdout, to a terminal, a pipe or a file alike.
 *
 * @example
 * ```ts
 * // The whole text reaches stdout, however long and wherever stdout goes.
 * print("task  items  cached");
 * ```
 */
export function print(text: string): void {
  const bytes = new TextEncoder().encode(text + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

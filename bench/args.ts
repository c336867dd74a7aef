/**
 * Command-line flags of the benchmarks: `--name value` pairs read from `Deno.args`.
 *
 * @module
 */

/** Raised for a flag whose value cannot be used; the message names it and what was found. */
export class BenchArgumentError extends Error {
  override readonly name = "BenchArgumentError";
}

/** The value after `--name`, or `fallback`. */
export function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1] : fallback;
}

/** The value after `--name` as a positive integer, or `fallback`; anything else throws. */
export function positiveInt(name: string, fallback: string): number {
  const value = Number(flag(name, fallback));
  if (!Number.isInteger(value) || value < 1) {
    throw new BenchArgumentError(
      `--${name}: expected a positive integer, found ${flag(name, "")}`,
    );
  }
  return value;
}

/**
 * Slurm's `--array` index syntax (`"0-9"`, `"1,4,7"`, `"0-15:4%2"`), which `sbatch` takes and
 * `scontrol` and `sacct` print for tasks that have not started yet.
 *
 * @module
 */
import { SlurmError } from "./slurm_error.ts";

/**
 * Expands an array index specification in `--array` syntax (without the `%N` limit, which is
 * ignored if present) into the sorted list of indices.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(expandArrayIndices("0-3,7"), [0, 1, 2, 3, 7]);
 * assert.deepEqual(expandArrayIndices("1-9:4%2"), [1, 5, 9]);
 * ```
 */
export function expandArrayIndices(spec: string): number[] {
  const indices = new Set<number>();
  const body = spec.split("%")[0];
  for (const part of body.split(",")) {
    const match = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (!match) {
      throw new SlurmError(
        `array index specification ${JSON.stringify(spec)}: expected "N", "N-M" or "N-M:S" ` +
          `separated by commas, found ${JSON.stringify(part)}`,
      );
    }
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    const step = match[3] === undefined ? 1 : Number(match[3]);
    if (last < first || step < 1) {
      throw new SlurmError(
        `array index specification ${JSON.stringify(spec)}: empty range ${JSON.stringify(part)}`,
      );
    }
    for (let i = first; i <= last; i += step) indices.add(i);
  }
  return [...indices].sort((a, b) => a - b);
}

/**
 * Cancelling a job, or one task of a job array, with `scancel`.
 *
 * @module
 */
import { commandFailed, runSlurm, type SlurmCommandOptions } from "./slurm_command.ts";
import { SlurmError } from "./slurm_error.ts";

/**
 * Cancels a whole job (`123`) or one array task (`"123_4"`) with `scancel`. Cancelling a job that
 * has already ended is not an error (scancel itself accepts it), so a coordinator can cancel on
 * interrupt without first checking.
 *
 * @example
 * ```ts ignore
 * // Not run as a test: it needs a Slurm cluster (tests/executor_slurm_test.ts starts one).
 * const jobId = 4242;
 * await cancel(`${jobId}_1`); // just task 1
 * await cancel(jobId); // everything left
 * ```
 */
export async function cancel(
  target: number | string,
  options: SlurmCommandOptions = {},
): Promise<void> {
  const text = String(target);
  if (!/^[1-9]\d*(_\d+)?$/.test(text)) {
    throw new SlurmError(
      `expected a job id ("123") or an array task ("123_4") to cancel, found ${
        JSON.stringify(text)
      }`,
    );
  }
  const result = await runSlurm("scancel", [text], { env: options.env });
  if (result.code !== 0) throw commandFailed("scancel", [text], result);
}

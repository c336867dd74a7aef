/**
 * The error every Slurm client call fails with.
 *
 * @module
 */

/**
 * Raised when a Slurm command is missing, exits with an error, or prints something the client
 * cannot read. The message names the command and includes what Slurm printed on stderr.
 */
export class SlurmError extends Error {
  override readonly name = "SlurmError";
  /** The command that failed (`sbatch`, `squeue`, `scontrol`, `sacct`, `scancel`), if any. */
  readonly command?: string;
  /** What the command printed on stderr, trimmed (empty when it did not run). */
  readonly stderr: string;
  /**
   * The command's exit code when it ran and failed, e.g. because the controller did not answer
   * in time; absent when it could not start or printed something unreadable.
   */
  readonly commandExitCode?: number;
  /** What the latentforge command exits with: a cluster it cannot use is a bad invocation. */
  readonly exitCode = 2;

  constructor(
    message: string,
    options: { command?: string; stderr?: string; commandExitCode?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.command = options.command;
    this.stderr = options.stderr ?? "";
    this.commandExitCode = options.commandExitCode;
  }
}

/**
 * Running Slurm's command-line tools. Every call spawns the real command, found on `PATH` (the
 * `env` option can change `PATH`; the rest of the environment is inherited). Slurm's
 * configuration is found the usual way (`/etc/slurm/slurm.conf`, or `SLURM_CONF`). Errors name
 * the command, what was expected and what Slurm printed.
 *
 * @module
 */
import { SlurmError } from "./slurm_error.ts";

/** Options every call accepts. */
export interface SlurmCommandOptions {
  /**
   * Variables set for the Slurm command on top of the inherited environment (default: none).
   * `PATH` here decides where the command is found; for `submitArray` the job inherits these too.
   */
  env?: Record<string, string>;
}

/** What a Slurm command did. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

/**
 * Runs a Slurm command to its end and returns its exit code and output; raises
 * {@linkcode SlurmError} when the command is not on `PATH` or cannot start. Input given as
 * `stdin` is written to the command, which may quit without reading it (its exit code and
 * stderr then say why).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SlurmError } from "./slurm_error.ts";
 *
 * // Any command is run the same way; `true` stands in for a Slurm command here.
 * const result = await runSlurm("true", []);
 * assert.deepEqual(result, { code: 0, stdout: "", stderr: "" });
 * await assert.rejects(runSlurm("no-such-slurm-command", []), SlurmError);
 * ```
 */
export async function runSlurm(
  command: string,
  args: readonly string[],
  options: { env?: Record<string, string>; stdin?: string } = {},
): Promise<CommandResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command, {
      args: [...args],
      env: options.env,
      stdin: options.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new SlurmError(
        `${command} not found on PATH: install Slurm's client commands or run on a login node`,
        { command, cause: error },
      );
    }
    throw new SlurmError(`could not start ${command}: ${(error as Error).message}`, {
      command,
      cause: error,
    });
  }
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(new TextEncoder().encode(options.stdin));
      await writer.close();
    } catch (error) {
      // The command quit without reading its input (e.g. a bad option): its exit code and
      // stderr, read below, say why.
      if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
    }
  }
  const output = await child.output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr).trim(),
  };
}

/**
 * The error for a command that ran and failed: the command line, its exit code and its stderr.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const error = commandFailed("squeue", ["-j", "7"], { code: 1, stdout: "", stderr: "boom" });
 * assert.equal(error.message, "squeue -j 7 failed (exit code 1): boom");
 * assert.equal(error.commandExitCode, 1);
 * ```
 */
export function commandFailed(
  command: string,
  args: readonly string[],
  result: CommandResult,
): SlurmError {
  return new SlurmError(
    `${command} ${args.join(" ")} failed (exit code ${result.code}): ${
      result.stderr || "(nothing on stderr)"
    }`,
    { command, stderr: result.stderr, commandExitCode: result.code },
  );
}

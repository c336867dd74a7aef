/**
 * How a command ends: its exit code, and the one line that says what went wrong. An error
 * says its own exit code (`readonly exitCode`: 2 for a bad invocation, 3 for a fault of the
 * machine); what a dependency or the system raises is worded here. No stack trace and no raw
 * third-party text reaches the terminal.
 *
 * @module
 */
import { CommanderError } from "commander";
import { errorText } from "../dag/errors.ts";
import { recordsFault } from "../store/records_file.ts";
import { systemicFault } from "../store/systemic.ts";

/** Exit codes. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  busy: 2,
  /** A systemic fault: disk full, read-only filesystem, damaged store. */
  systemic: 3,
  interrupted: 130,
} as const;

/** Commander's codes for a help or version text it printed on request. */
const ASKED_FOR = new Set(["commander.helpDisplayed", "commander.version", "commander.help"]);

/**
 * Says what went wrong with a command on stderr and returns the exit code it ends with.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigError } from "../dag/config.ts";
 *
 * // Prints "error: config x.json: dataset.path: expected a string" on stderr.
 * const code = reportError(new ConfigError("config x.json: dataset.path: expected a string"), "cache");
 * assert.equal(code, EXIT.usage);
 * ```
 */
export function reportError(e: unknown, cacheDir: string): number {
  const fault = systemicFault(e, { cacheDir }) ?? recordsFault(e, cacheDir);
  if (fault) {
    console.error(`error: ${fault.message}`);
    return fault.exitCode;
  }
  // Commander has printed its own message (or the help) already.
  if (e instanceof CommanderError) return ASKED_FOR.has(e.code) ? EXIT.ok : EXIT.usage;
  if (e instanceof Error && typeof (e as { exitCode?: unknown }).exitCode === "number") {
    console.error(`error: ${e.message}`);
    return (e as Error & { exitCode: number }).exitCode;
  }
  if (e instanceof Error && /database is locked/.test(e.message)) {
    // Two processes opening a fresh cache at the same moment: SQLite refuses the second.
    console.error(
      "error: the cache's record database is locked by another latentforge process starting " +
        "at the same moment (database is locked); nothing was changed: run again",
    );
    return EXIT.busy;
  }
  if (e instanceof Deno.errors.NotCapable) {
    // Under `deno task`, access is granted to the project, the cache, the output directory and
    // the files and hosts the config names; anything else is refused, not prompted for.
    console.error(
      `error: ${e.message.replace(/, run again with the --allow-\w+ flag$/, "")}: ` +
        `outside what the config names (the project, --cache, package.out_dir, local model and ` +
        `data paths, and the hosts of its URLs)`,
    );
    return EXIT.usage;
  }
  console.error(`error: ${errorText(e)}`);
  return EXIT.failed;
}

/**
 * What the commands share: the options every command takes (`--cache`, `--json`, and with a
 * config `--config`, `--set`), the options that shape a plan, and what a command is handed.
 *
 * @module
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { expandHome, HomePathError } from "../base/home_path.ts";
import type { TaskGraph } from "../dag/graph.ts";
import type { Pipeline } from "../dag/task.ts";

/** What every command is handed: the pipeline, its graph, and where its exit code goes. */
export interface Cli<C = unknown> {
  pipeline: Pipeline<C>;
  graph: TaskGraph;
  /** The exit code the command ends with (set by its action). */
  code: number;
}

/** Options every command with a config takes. */
export interface CommonOptions {
  config: string;
  set: string[];
  cache: string;
  json?: boolean;
}

/** The options that shape a plan. */
export interface PlanFlags {
  executor?: "local" | "slurm";
  limit?: number;
  force: string[];
}

/**
 * Adds `--cache` and `--json` to a command, and `--config` and `--set` unless `config` is false.
 * `~/…` and `$HOME/…` in `--cache` and `--config` name the home directory (a shell leaves
 * `--cache=~/c` as it is).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Command } from "commander";
 *
 * const cmd = withCommon(new Command("gc"), "config/ffhq.json", { config: false });
 * cmd.parse(["--cache", "/tmp/c"], { from: "user" });
 * assert.deepEqual(cmd.opts(), { cache: "/tmp/c" });
 * cmd.parse(["--cache=~/c"], { from: "user" });
 * assert.equal(cmd.opts().cache, `${Deno.env.get("HOME")}/c`);
 * ```
 */
export function withCommon(
  cmd: Command,
  defaultConfig: string,
  { config = true } = {},
): Command {
  if (config) {
    cmd.option("--config <file>", "config file", homePath, defaultConfig)
      .option("--set <path=value>", "override a config field (repeatable)", collect, []);
  }
  return cmd.option("--cache <dir>", "cache directory", homePath, "./cache")
    .option("--json", "machine-readable output");
}

/**
 * Adds the options that shape a plan: `status` and `explain` take them too, so they answer for
 * exactly the run the same options start.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Command } from "commander";
 *
 * const cmd = withPlanning(new Command("status"), "config/ffhq.json");
 * cmd.parse(["--limit", "8", "--force", "encode"], { from: "user" });
 * assert.equal(cmd.opts().limit, 8);
 * assert.deepEqual(cmd.opts().force, ["encode"]);
 * ```
 */
export function withPlanning(cmd: Command, defaultConfig: string): Command {
  return withCommon(cmd, defaultConfig)
    .option("--limit <n>", "only the first N items (for trying things)", positiveInt)
    .option("--force <task>", "ignore the cache of a task (repeatable)", collect, [])
    .addOption(
      new Option("--executor <kind>", "where executor.tasks run (default: config executor.kind)")
        .choices(["local", "slurm"]),
    );
}

/**
 * Reads a positive integer option, or says what was expected and found.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(positiveInt("16"), 16);
 * assert.throws(() => positiveInt("0"), /expected a positive integer, found "0"/);
 * ```
 */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError(`expected a positive integer, found "${value}"`);
  }
  return n;
}

/** A path option's value with the home directory written out. */
function homePath(value: string): string {
  try {
    return expandHome(value);
  } catch (e) {
    if (e instanceof HomePathError) throw new InvalidArgumentError(e.message);
    throw e;
  }
}

/** Collects a repeatable option's values. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

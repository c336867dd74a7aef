/**
 * `gc`: deletes the objects no kept run reaches, under the cache's lease; `--dry-run` only says
 * what it would free.
 *
 * @module
 */
import type { Command } from "commander";
import { formatBytes } from "../base/bytes.ts";
import { collectGarbage, type GcResult } from "../store/maintenance.ts";
import { EXIT } from "./exit_codes.ts";
import { withLease } from "./leases.ts";
import { type Cli, type CommonOptions, positiveInt, withCommon } from "./options.ts";

/**
 * Adds `gc` to the program; its action sets `cli.code`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Command } from "commander";
 * import { TaskGraph } from "../dag/graph.ts";
 * import { pipeline } from "../../pipeline.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const cli = { pipeline, graph: new TaskGraph(pipeline.tasks), code: -1 };
 * const program = new Command().exitOverride();
 * addGcCommand(program, cli);
 * await program.parseAsync(["gc", "--json", "--cache", cache], { from: "user" });
 * assert.equal(cli.code, 0);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export function addGcCommand<C>(program: Command, cli: Cli<C>): void {
  withCommon(
    program.command("gc").description("delete objects no kept run reaches"),
    cli.pipeline.defaultConfig,
    { config: false },
  )
    .option("--dry-run", "only report what would be deleted")
    .option("--keep-runs <n>", "keep what the last N successful runs reference", positiveInt, 3)
    .action(async (opts: CommonOptions & { dryRun?: boolean; keepRuns: number }) => {
      cli.code = await withLease(opts.cache, "gc", async (store, records) => {
        const r = await collectGarbage(store, records, {
          keepRuns: opts.keepRuns,
          dryRun: opts.dryRun,
        });
        console.log(opts.json ? JSON.stringify(r) : gcLine(r, opts.dryRun ?? false));
        return EXIT.ok;
      });
    });
}

function gcLine(r: GcResult, dryRun: boolean): string {
  return `${dryRun ? "would free" : "freed"} ${formatBytes(r.bytesFreed)} in ` +
    `${r.objectsDeleted} objects; kept ${r.objectsKept} (runs ${
      r.keptRuns.join(", ") || "none"
    }); ` +
    `pruned ${r.recordsPruned} old records, ${r.tempFilesRemoved} temp files`;
}

/**
 * `verify [--repair]`: checks everything a cache holds and says what it found and what the
 * next run will rebuild — the record database (SQLite's page check, and every record the
 * journal holds), every object against its digest, every record against the objects it names
 * (directly or downstream), and every folder the cache published against the objects it was
 * published from. `--repair` first rebuilds a damaged record database from the journal.
 *
 * Exit codes: 0 nothing found; 1 something was found and set right (the next run rebuilds it);
 * 3 the record database is damaged (run `verify --repair`).
 *
 * @module
 */
import type { Command } from "commander";
import { verifyStore } from "../store/maintenance.ts";
import { CorruptObjectError, MissingObjectError, ObjectStore } from "../store/objects.ts";
import { type PublishedCheck, verifyPublished } from "../store/publish.ts";
import { publishedFolders } from "../store/published_list.ts";
import type { Records } from "../store/records.ts";
import { diagnoseRecords, repairRecords, type RepairResult } from "../store/repair.ts";
import { formatBytes } from "../base/bytes.ts";
import { withLease } from "./leases.ts";
import { type Cli, type CommonOptions, withCommon } from "./options.ts";

/**
 * Adds `verify [--repair]` to the program; its action sets `cli.code`.
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
 * addVerifyCommand(program, cli);
 * await program.parseAsync(["verify", "--json", "--cache", cache], { from: "user" });
 * assert.equal(cli.code, 0); // an empty cache: nothing found
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export function addVerifyCommand<C>(program: Command, cli: Cli<C>): void {
  withCommon(
    program.command("verify").description(
      "re-hash every object, check the records and published folders; --repair rebuilds a " +
        "damaged record database",
    ),
    cli.pipeline.defaultConfig,
    { config: false },
  )
    .option("--repair", "rebuild a damaged record database from the journal first")
    .action(async (opts: CommonOptions & { repair?: boolean }) => {
      cli.code = await verifyCommand({
        store: new ObjectStore(opts.cache),
        json: opts.json ?? false,
        repair: opts.repair ?? false,
        deps: new Map(cli.graph.order.map((t) => [t.name, t.deps])),
        leased: (fn) => withLease(opts.cache, "verify", (_store, records) => fn(records)),
      });
    });
}

/** Options of {@link verifyCommand}. */
export interface VerifyCommandOptions {
  store: ObjectStore;
  /** Print one JSON object instead of lines. */
  json: boolean;
  /** Rebuild a damaged record database first. */
  repair: boolean;
  /** The tasks each task reads. */
  deps: Map<string, string[]>;
  /** Runs `fn` holding the cache's lease (opening the records), returning its exit code. */
  leased: (fn: (records: Records) => Promise<number>) => Promise<number>;
}

/**
 * Runs `verify` and returns its exit code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 * import { openRecords } from "../store/records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * await store.put(new TextEncoder().encode("a latent"));
 * const code = await verifyCommand({
 *   store,
 *   json: true,
 *   repair: false,
 *   deps: new Map([["package", ["optimize"]]]),
 *   leased: async (fn) => {
 *     const records = await openRecords(cache);
 *     try {
 *       return await fn(records);
 *     } finally {
 *       records.close();
 *     }
 *   },
 * });
 * assert.equal(code, 0); // one sound object, nothing to set right
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function verifyCommand(
  { store, json, repair, deps, leased }: VerifyCommandOptions,
): Promise<number> {
  const cache = store.root;
  let repaired: RepairResult | undefined;
  if (repair) {
    repaired = await repairRecords(store);
    if (!json) printRepair(repaired, cache);
  }
  return await leased(async (records) => {
    const diagnosis = repaired ? undefined : await diagnoseRecords(cache);
    if (diagnosis && (diagnosis.problems.length || diagnosis.lost)) {
      const what = diagnosis.problems.length
        ? diagnosis.problems.join("; ")
        : `${diagnosis.lost} records the journal holds are missing from it`;
      if (json) console.log(JSON.stringify({ damaged: diagnosis }));
      else {
        console.log(
          `the record database ${cache}/records.sqlite3 is damaged (${what}): run ` +
            `"deno task verify --repair --cache ${cache}" to rebuild it from the journal`,
        );
      }
      return 3;
    }
    const r = await verifyStore(store, records, { deps });
    const published: (PublishedCheck | { dir: string; error: string })[] = [];
    for (const dir of await publishedFolders(cache)) {
      try {
        published.push(await verifyPublished(store, dir));
      } catch (e) {
        if (!(e instanceof CorruptObjectError || e instanceof MissingObjectError)) throw e;
        published.push({ dir, error: `${e.message}` });
      }
    }
    const fixedOut = published.filter((p) => "error" in p || p.repaired.length > 0);
    const found = r.corrupt.length + r.missing.length + fixedOut.length;
    if (json) {
      console.log(JSON.stringify({ ...r, repair: repaired, published }));
      return found ? 1 : 0;
    }
    console.log(`checked ${r.checked} objects (${formatBytes(r.bytes)})`);
    for (const c of r.corrupt) console.log(`corrupt: ${c.digest} → ${c.quarantinedTo}`);
    for (const m of r.missing) {
      const by = m.neededBy.slice(0, 3).join(", ") + (m.neededBy.length > 3 ? ", …" : "");
      console.log(`missing: ${m.digest} (recorded as the output of ${by})`);
    }
    if (r.recordsInvalidated) {
      console.log(
        `${r.recordsInvalidated} records invalidated (${tally(r.invalidated)}); the next run ` +
          `rebuilds exactly those`,
      );
    }
    for (const p of published) {
      if ("error" in p) console.log(`${p.dir}: not repaired: ${p.error}`);
      else if (p.skipped) console.log(`${p.dir}: not checked, ${p.skipped}`);
      else if (p.repaired.length) {
        console.log(
          `${p.dir}: rewrote ${p.repaired.join(", ")} (differed from what was published)`,
        );
      } else console.log(`${p.dir}: every published file matches`);
    }
    if (r.corrupt.length + r.missing.length === 0) console.log("no corrupt objects, none missing");
    return found ? 1 : 0;
  });
}

function printRepair(r: RepairResult, cache: string): void {
  const d = r.diagnosis;
  if (r.setAside) {
    console.log(
      `${cache}/records.sqlite3 was damaged (${d.problems.join("; ")}); moved to ${r.setAside}`,
    );
  } else if (d.problems.length) {
    console.log(`${cache}/records.sqlite3 was ${d.problems.join("; ")}; a new one is built`);
  } else if (d.lost === 0) {
    console.log(`${cache}/records.sqlite3 is sound and holds every journaled record`);
    return;
  }
  const restored = Object.values(r.restored).reduce((a, b) => a + b, 0);
  console.log(
    `restored ${restored} action records${restored ? ` (${tally(r.restored)})` : ""}, ` +
      `${r.components} key components and config slices, and ${r.copied} run and failure records`,
  );
  const rerun = Object.values(r.rerun).reduce((a, b) => a + b, 0);
  if (rerun) {
    console.log(`will rerun: ${rerun} actions whose objects are gone (${tally(r.rerun)})`);
  } else console.log("nothing will rerun: every restored record's objects are in the store");
}

function tally(counts: Record<string, number>): string {
  return Object.entries(counts).map(([task, n]) => `${task} ${n}`).join(", ");
}

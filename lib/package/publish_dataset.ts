/**
 * Laying a packaged dataset out in `package.out_dir`, after a run and after a cache hit alike:
 * the stored files with the facts of the run that built them (the report's run section,
 * `run.json`, which also gives the settings the files do not state — where it was published,
 * how it ran — as the building run had them: the files state only what their key holds, so
 * moving `out_dir` republishes them without rebuilding), swapped in whole (see
 * lib/store/publish.ts). A partial dataset — a `--limit` run,
 * or one in which every item failed — never replaces a complete one: it goes beside it.
 *
 * @module
 */
import type { RunFacts } from "../dag/run_facts.ts";
import { withRunFiles } from "../report/run_files.ts";
import type { ObjectStore } from "../store/objects.ts";
import { publishDirectory } from "../store/publish.ts";

/** What package records about its dataset (its action's metadata). */
export interface PackageMeta {
  /** Images per split. */
  counts: Record<string, number>;
  /** Items that failed. */
  failed: number;
  /** The run's `--limit`, if any. */
  limit?: number | null;
}

/** Options of {@link publishDataset}. */
export interface PublishDatasetOptions {
  /** `package.out_dir`. */
  outDir: string;
  /** The cache and the config file the dataset came from (recorded in the folder's marker). */
  cacheDir: string;
  configFile?: string;
  /** Says where a partial dataset went, or which files were set right. */
  log: (line: string) => void;
}

/**
 * Publishes the dataset `objects` (relative path → digest), described by `meta`, with the
 * facts of the run that built it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const store = new ObjectStore(`${dir}/cache`);
 * const index = (text: string) => store.put(new TextEncoder().encode(text));
 * const lines: string[] = [];
 * const options = { outDir: `${dir}/out`, cacheDir: `${dir}/cache`, log: (l: string) => lines.push(l) };
 * const whole = { counts: { train: 2 }, failed: 0 };
 * await publishDataset(store, { "index.json": await index("[1,2]") }, whole, null, options);
 * const tried = { counts: { train: 1 }, failed: 0, limit: 1 };
 * await publishDataset(store, { "index.json": await index("[1]") }, tried, null, options);
 * assert.equal(await Deno.readTextFile(`${dir}/out/index.json`), "[1,2]");
 * assert.equal(await Deno.readTextFile(`${dir}/out.partial/index.json`), "[1]");
 * assert.match(lines[0], /holds a complete dataset, kept as it is; this run's partial dataset/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function publishDataset(
  store: ObjectStore,
  objects: Record<string, string>,
  meta: PackageMeta,
  run: RunFacts | null,
  { outDir, cacheDir, configFile, log }: PublishDatasetOptions,
): Promise<void> {
  const files = await withRunFiles(store, objects, run);
  const images = Object.values(meta.counts).reduce((a, b) => a + b, 0);
  // A partial dataset never replaces a complete one (it goes beside it).
  const partial = typeof meta.limit === "number"
    ? `--limit ${meta.limit}`
    : images === 0 && meta.failed > 0
    ? `every item failed (${meta.failed})`
    : undefined;
  const r = await publishDirectory(store, files, outDir, { cacheDir, configFile, partial, images });
  if (r.keptComplete) {
    log(
      `${r.keptComplete} holds a complete dataset, kept as it is; this run's partial dataset ` +
        `(${partial}) is in ${r.dir}`,
    );
  } else if (r.repaired.length) {
    log(`${r.dir}: rewrote ${r.repaired.join(", ")} (changed since published)`);
  }
}

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
import type { RunMadeWith } from "../report/run_section.ts";
import type { ObjectStore } from "../store/objects.ts";
import { publishDirectory, publishTarget } from "../store/publish.ts";

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
  /** The latentforge version, which the run's facts state with the dataset's limit. */
  madeWith?: Omit<RunMadeWith, "limit">;
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
  { outDir, cacheDir, configFile, log, madeWith }: PublishDatasetOptions,
): Promise<void> {
  // The limit is the one the dataset was built with (its record keeps it), not this run's.
  const made = madeWith && { ...madeWith, limit: meta.limit ?? null };
  const files = await withRunFiles(store, objects, run, made);
  const images = imageCount(meta);
  // A partial dataset never replaces a complete one (it goes beside it).
  const partial = partialReason(meta);
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

/**
 * Why the dataset `meta` describes is partial (`--limit 8`, `every item failed (9)`), or
 * undefined for a complete one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(partialReason({ counts: { train: 8 }, failed: 1, limit: 8 }), "--limit 8");
 * assert.equal(partialReason({ counts: {}, failed: 9 }), "every item failed (9)");
 * assert.equal(partialReason({ counts: { train: 8 }, failed: 1 }), undefined);
 * ```
 */
export function partialReason(meta: PackageMeta): string | undefined {
  return typeof meta.limit === "number"
    ? `--limit ${meta.limit}`
    : imageCount(meta) === 0 && meta.failed > 0
    ? `every item failed (${meta.failed})`
    : undefined;
}

/**
 * Where {@link publishDataset} put the dataset `meta` describes for `outDir`: `outDir` itself,
 * or its `.partial` sibling for a partial dataset while `outDir` holds a complete one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const where = await publishedFolder(`${dir}/out`, { counts: { train: 2 }, failed: 0 });
 * assert.deepEqual(where, { dir: `${dir}/out`, partial: undefined });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function publishedFolder(
  outDir: string,
  meta: PackageMeta,
): Promise<{ dir: string; partial?: string }> {
  const partial = partialReason(meta);
  return { dir: await publishTarget(outDir, { partial: partial !== undefined }), partial };
}

function imageCount(meta: PackageMeta): number {
  return Object.values(meta.counts).reduce((a, b) => a + b, 0);
}

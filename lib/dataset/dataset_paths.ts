/**
 * The local files and folders a `dataset` section names, for the launcher's read grant: a
 * folder, a spec or URL list, class-folder splits and their CSVs, tar shards and Parquet files
 * (patterns expanded, so the grant names each file).
 *
 * @module
 */
import { expandGlobs } from "./shard_glob.ts";

/** The dataset fields this module reads, as the config schema parses them. */
export type DatasetPaths =
  | { kind: "folder"; path: string }
  | { kind: "ffhq"; spec: { path?: string }; adopt: string[] }
  | { kind: "urls"; list: { path?: string }; adopt: string[] }
  | { kind: "imagefolder"; splits: Record<string, string | { path: string; labels: string }> }
  | { kind: "webdataset"; shards?: string[]; splits?: Record<string, string[]> }
  | { kind: "parquet"; files?: string[]; splits?: Record<string, string[]> };

/**
 * The paths (as the config gives them; patterns expanded) the dataset is read from, copies to
 * adopt included. A pattern that matches nothing is left as it is: the run reports it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const paths = await datasetReadPaths({
 *   kind: "imagefolder",
 *   splits: { train: "in/train", val: { path: "in/val", labels: "in/val.csv" } },
 * });
 * assert.deepEqual(paths, ["in/train", "in/val", "in/val.csv"]);
 * ```
 */
export async function datasetReadPaths(d: DatasetPaths): Promise<string[]> {
  switch (d.kind) {
    case "folder":
      return [d.path];
    case "ffhq":
      return [...(d.spec.path ? [d.spec.path] : []), ...d.adopt];
    case "urls":
      return [...(d.list.path ? [d.list.path] : []), ...d.adopt];
    case "imagefolder":
      return Object.values(d.splits).flatMap((s) =>
        typeof s === "string" ? [s] : [s.path, s.labels]
      );
    case "webdataset":
    case "parquet": {
      const patterns = [
        ...(d.kind === "webdataset" ? d.shards ?? [] : d.files ?? []),
        ...Object.values(d.splits ?? {}).flat(),
      ];
      const out: string[] = [];
      for (const p of patterns) out.push(...await expandGlobs([p]).catch(() => [p]));
      return [...new Set(out)];
    }
  }
}

/**
 * The local files and folders a `dataset` section names, for the launcher's read grant: a
 * folder, a spec or URL list, class-folder splits and their CSVs, tar shards and Parquet files.
 * A pattern (`data/laion/*.tar`) is granted as the folder it lists, since the run lists it again
 * to notice shards that came or went.
 *
 * @module
 */
import { globBase } from "./shard_glob.ts";

/** The dataset fields this module reads, as the config schema parses them. */
export type DatasetPaths =
  | { kind: "folder"; path: string }
  | { kind: "ffhq"; spec: { path?: string }; adopt: string[] }
  | { kind: "urls"; list: { path?: string }; adopt: string[] }
  | { kind: "imagefolder"; splits: Record<string, string | { path: string; labels: string }> }
  | { kind: "webdataset"; shards?: string[]; splits?: Record<string, string[]> }
  | { kind: "parquet"; files?: string[]; splits?: Record<string, string[]> };

/**
 * The paths (as the config gives them; for a pattern, the folder it lists) the dataset is read
 * from, copies to adopt included.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const paths = datasetReadPaths({
 *   kind: "imagefolder",
 *   splits: { train: "in/train", val: { path: "in/val", labels: "in/val.csv" } },
 * });
 * assert.deepEqual(paths, ["in/train", "in/val", "in/val.csv"]);
 * ```
 */
export function datasetReadPaths(d: DatasetPaths): string[] {
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
      return [...new Set(patterns.map(globBase))];
    }
  }
}

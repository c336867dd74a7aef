/**
 * package: write the dataset files and the report.
 *
 * @module
 */
import { declared } from "../lib/dag/task.ts";

export default declared("aggregate", {
  name: "package",
  deps: ["optimize", "encode", "label-split"],
  config: ["package", "model", "optimize"],
  version: "1",
  source: import.meta.url,
  describe: "write the dataset files and the report",
});

/**
 * label-split: join labels and split the dataset.
 *
 * @module
 */
import { declared } from "../lib/dag/task.ts";

export default declared("aggregate", {
  name: "label-split",
  deps: ["verify-sizes", "fetch-json"],
  config: ["labels", "dataset.kind"],
  version: "1",
  source: import.meta.url,
  describe: "join labels and split the dataset",
});

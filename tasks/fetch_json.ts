/**
 * fetch-json: download the dataset spec and index its items.
 *
 * @module
 */
import { declared } from "../lib/dag/task.ts";

export default declared("aggregate", {
  name: "fetch-json",
  deps: [],
  config: ["dataset"],
  version: "1",
  source: import.meta.url,
  describe: "download the dataset spec and index its items",
});

/**
 * fetch-images: download every image, verified by size and MD5.
 *
 * @module
 */
import { declared } from "../lib/dag/task.ts";

export default declared("each", {
  name: "fetch-images",
  deps: ["fetch-json"],
  config: ["download"],
  version: "1",
  source: import.meta.url,
  describe: "download every image, verified by size and MD5",
});

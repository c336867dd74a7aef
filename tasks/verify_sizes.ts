/**
 * verify-sizes: check pixel sizes and the item count.
 *
 * @module
 */
import { declared } from "../lib/dag/task.ts";

export default declared("each", {
  name: "verify-sizes",
  deps: ["fetch-images"],
  config: ["download.verify_pixels"],
  version: "1",
  source: import.meta.url,
  describe: "check pixel sizes and the item count",
});

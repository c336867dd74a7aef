/**
 * preprocess: crop, resize and normalise every image.
 *
 * @module
 */
import { declared } from "../lib/dag/task.ts";

export default declared("each", {
  name: "preprocess",
  deps: ["label-split", "fetch-images"],
  config: ["preprocess", "model.input_range"],
  version: "1",
  source: import.meta.url,
  describe: "crop, resize and normalise every image",
});

/**
 * encode: encode every image with the VAE encoder.
 *
 * @module
 */
import { declared } from "../lib/dag/task.ts";

export default declared("each", {
  name: "encode",
  deps: ["preprocess"],
  config: ["model"],
  version: "1",
  source: import.meta.url,
  describe: "encode every image with the VAE encoder",
});

/**
 * optimize: refine every latent until the decoder matches the image.
 *
 * @module
 */
import { declared } from "../lib/dag/task.ts";

export default declared("each", {
  name: "optimize",
  deps: ["encode", "preprocess"],
  config: ["model", "optimize"],
  version: "1",
  source: import.meta.url,
  describe: "refine every latent until the decoder matches the image",
});

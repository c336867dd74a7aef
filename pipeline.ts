/**
 * latentforge: the dataset pipeline, declared from `tasks/` and handed to the command line.
 *
 * ```sh
 * deno task run optimize
 * ```
 *
 * @module
 */
import { main } from "./lib/cli/main.ts";
import type { Pipeline } from "./lib/dag/task.ts";
import { type Config, ConfigSchema } from "./config/schema.ts";
import denoJson from "./deno.json" with { type: "json" };
import fetchJson from "./tasks/fetch_json.ts";
import fetchImages from "./tasks/fetch_images.ts";
import verifySizes from "./tasks/verify_sizes.ts";
import labelSplit from "./tasks/label_split.ts";
import preprocess from "./tasks/preprocess.ts";
import encode from "./tasks/encode.ts";
import optimize from "./tasks/optimize.ts";
import packageTask from "./tasks/package.ts";

/** The eight tasks, from the dataset spec to the packaged latents. */
export const pipeline: Pipeline<Config> = {
  name: "latentforge",
  version: denoJson.version,
  tasks: [
    fetchJson,
    fetchImages,
    verifySizes,
    labelSplit,
    preprocess,
    encode,
    optimize,
    packageTask,
  ],
  schema: ConfigSchema,
  defaultConfig: "config/ffhq.json",
  defaultTargets: ["package"],
  // Slurm array tasks run this module's `worker`, also when the demo started the run.
  entry: import.meta.url,
};

if (import.meta.main) Deno.exit(await main(pipeline, Deno.args));

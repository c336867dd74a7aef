/**
 * The config schema: every field latentforge reads, its type and its default. A wrong config
 * names the field, the expected value and what was found.
 *
 * @module
 */
import { z } from "zod";
import { ExecutorSchema } from "../lib/executor/config.ts";
import { DRIVE_API_URL } from "../lib/net/drive_api.ts";
import { IMAGE_EXTENSIONS } from "../lib/dataset/image_extensions.ts";
import { bucketProblem, DEFAULT_BUCKET_STEP } from "../lib/image/buckets.ts";
import { SHARD_BYTES } from "../lib/package/shards.ts";
import { checkModelConfig, resolveModelConfig } from "../lib/model/model_config.ts";
import { PRESET_NAMES } from "../lib/model/presets.ts";
import { PROVIDER_NAMES } from "../lib/onnx/providers.ts";
import {
  checkMethodModels,
  checkOptimizeConfig,
  resolveOptimizeConfig,
} from "../lib/optim/optimize_config.ts";

const md5 = z.string().regex(/^[0-9a-f]{32}$/, "expected 32 lowercase hex digits (an MD5)");
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex digits (a sha256)");
const httpUrl = z.string().regex(/^https?:\/\//, "expected an http(s) URL");

/** A file that is either local or downloaded (models, specs, label lists). */
export const FileSource = z.strictObject({
  path: z.string().min(1).optional(),
  url: httpUrl.optional(),
  sha256: sha256.optional(),
  md5: md5.optional(),
  size: z.number().int().positive().optional(),
}).refine((f) => (f.path === undefined) !== (f.url === undefined), {
  message: "expected exactly one of path or url",
});

/** Local folders and `.zip` archives holding copies of the images, adopted before downloading. */
const Adopt = z.array(z.string().min(1)).default([]);
/** The dataset's name, the report's title; by default derived from the source. */
const datasetName = z.string().min(1).optional();

const FfhqDataset = z.strictObject({
  kind: z.literal("ffhq"),
  name: datasetName,
  spec: FileSource,
  component: z.enum(["image", "thumbnail", "in_the_wild"]).default("image"),
  mirrors: z.array(httpUrl).default([]),
  adopt: Adopt,
});

const FolderDataset = z.strictObject({
  kind: z.literal("folder"),
  name: datasetName,
  path: z.string().min(1),
  extensions: z.array(z.string()).default([...IMAGE_EXTENSIONS]),
});

/** A split's name is a folder of the dataset's output: letters, digits, `.`, `_`, `-`. */
const splitName = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
  "expected a split name of letters, digits, '.', '_' or '-'",
);

/** Class folders (torchvision's ImageFolder): each split's sub-folders are its classes. */
const ImageFolderDataset = z.strictObject({
  kind: z.literal("imagefolder"),
  name: datasetName,
  splits: z.record(
    splitName,
    z.union([
      z.string().min(1),
      // A flat folder with a CSV of `file,class` (ImageNet's validation images).
      z.strictObject({ path: z.string().min(1), labels: z.string().min(1) }),
    ]),
  ).refine((s) => Object.keys(s).length > 0, { message: "expected at least one split" }),
  extensions: z.array(z.string()).default([...IMAGE_EXTENSIONS]),
});

/** Shards or tables: one list (split `all`), or a list per split. */
const fileLists = {
  splits: z.record(splitName, z.array(z.string().min(1)).min(1)).optional(),
};
const oneOfFilesOrSplits = (field: "shards" | "files") => ({
  check: (d: { splits?: unknown } & Record<string, unknown>) =>
    (d[field] === undefined) !== (d.splits === undefined),
  message: {
    path: [field],
    message: `expected exactly one of ${field} (split "all") or splits (${field} per split)`,
  },
});
const shardsRule = oneOfFilesOrSplits("shards");
const filesRule = oneOfFilesOrSplits("files");

/** WebDataset tar shards (img2dataset): `{key}.jpg` with `{key}.txt` and `{key}.json`. */
const WebDatasetDataset = z.strictObject({
  kind: z.literal("webdataset"),
  name: datasetName,
  /** Paths or patterns (`shards/*.tar`), in listing order. */
  shards: z.array(z.string().min(1)).min(1).optional(),
  ...fileLists,
  extensions: z.array(z.string()).default([...IMAGE_EXTENSIONS]),
}).refine(shardsRule.check, shardsRule.message);

/** Parquet tables (Hugging Face datasets, img2dataset): image bytes and other columns. */
const ParquetDataset = z.strictObject({
  kind: z.literal("parquet"),
  name: datasetName,
  /** Paths or patterns (`data/train-*.parquet`), in listing order. */
  files: z.array(z.string().min(1)).min(1).optional(),
  ...fileLists,
  image_column: z.string().min(1).default("image"),
  /** The column of each image's id; default `<file stem>/<row>`. */
  id_column: z.string().min(1).optional(),
  caption_column: z.string().min(1).default("caption"),
}).refine(filesRule.check, filesRule.message);

const UrlsDataset = z.strictObject({
  kind: z.literal("urls"),
  name: datasetName,
  list: FileSource,
  adopt: Adopt,
});

/** The whole config. */
export const ConfigSchema = z.strictObject({
  dataset: z.discriminatedUnion("kind", [
    FfhqDataset,
    FolderDataset,
    UrlsDataset,
    ImageFolderDataset,
    WebDatasetDataset,
    ParquetDataset,
  ]),
  download: z.strictObject({
    concurrency_per_host: z.number().int().positive().default(16),
    stall_s: z.number().positive().default(60),
    attempts: z.number().int().positive().default(8),
    quota_backoff_s: z.number().positive().default(600),
    verify_pixels: z.boolean().default(false),
    materialize: z.string().nullable().default(null),
    /** The name of the environment variable holding a Google Drive API key (never the key). */
    google_api_key_env: z.string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "expected the name of an environment variable")
      .nullable().default(null),
    google_api_url: httpUrl.default(DRIVE_API_URL),
  }).prefault({}),
  labels: z.strictObject({
    source: FileSource,
    split_by: z.array(z.string()).default(["gender"]),
    min_confidence: z.record(z.string(), z.number().min(0).max(1)).default({}),
    filters: z.strictObject({
      glasses: z.array(z.string()).optional(),
      max_abs_yaw: z.number().positive().optional(),
      max_abs_pitch: z.number().positive().optional(),
    }).prefault({}),
    max_missing: z.number().int().min(0).default(0),
  }).nullable().default(null),
  preprocess: z.strictObject({
    size: z.number().int().positive().multipleOf(8).default(256),
    crop: z.enum(["center", "none", "buckets"]).default("center"),
    buckets: z.strictObject({
      area: z.number().int().positive().optional(),
      step: z.number().int().positive().default(DEFAULT_BUCKET_STEP),
      min_side: z.number().int().positive().optional(),
      max_side: z.number().int().positive().optional(),
      no_upscale: z.boolean().default(false),
    }).prefault({}),
    flip: z.boolean().default(false),
  }).prefault({}).superRefine((p, ctx) => {
    if (p.crop !== "buckets") return;
    const problem = bucketProblem(p.size, p.buckets);
    if (problem) ctx.addIssue({ code: "custom", path: ["buckets", problem.field], ...problem });
  }),
  model: z.strictObject({
    encoder: FileSource,
    /** Needed to optimize, and for the report's decoded samples; optional with method "none". */
    decoder: FileSource.optional(),
    /** Fills the fields below from a known VAE family's published numbers (README table). */
    preset: z.enum(PRESET_NAMES).optional(),
    /**
     * Latent channels C: without a decoder, where no preset says them (the encoder gives C or
     * 2C); with one that does not declare them, encode keys on them rather than on its bytes.
     * Checked against the decoder when it runs.
     */
    latent_channels: z.number().int().positive().optional(),
    /** Stored latent = (z − shift_factor) × scaling_factor; no default: a preset or a number. */
    scaling_factor: z.number().positive().optional(),
    shift_factor: z.number().optional(),
    /** Per-channel standardization of z before shift and scale, one value per channel. */
    latents_mean: z.array(z.number()).min(1).optional(),
    latents_std: z.array(z.number().positive()).min(1).optional(),
    input_range: z.tuple([z.number(), z.number()]).optional(),
    /** Execution providers in the order tried (default: the platform's; README "Providers"). */
    providers: z.array(z.enum(PROVIDER_NAMES)).min(1).optional(),
    threads: z.number().int().positive().optional(),
  }).superRefine(checkModelConfig).transform(resolveModelConfig),
  optimize: z.strictObject({
    /** "gradient" is Adam on the loss gradient; README "Which optimizer" says when to use which. */
    /** "none" keeps the encoder's latents: no decoder pass runs (README "Encode only"). */
    method: z.enum(["gradient", "lbfgs", "gradient_free", "none"]).default("gradient"),
    /** Adam's learning rate (default 0.1); with lbfgs, each line search's first step (default 1). */
    lr: z.number().positive().optional(),
    schedule: z.enum(["constant", "cosine"]).default("constant"),
    warmup_steps: z.number().int().min(0).default(0),
    loss: z.enum(["l2", "l1", "charbonnier"]).default("l2"),
    charbonnier_eps: z.number().positive().default(1e-3),
    max_steps: z.number().int().positive().default(100),
    /** Loss-and-gradient evaluations per image at most, line searches included; null: none. */
    max_passes: z.number().int().positive().nullable().default(null),
    /** L-BFGS's memory: the last `history` steps and gradient changes. */
    lbfgs: z.strictObject({ history: z.number().int().positive().default(10) }).prefault({}),
    patience: z.number().int().positive().default(10),
    tolerance: z.number().min(0).default(1e-4),
    batch_size: z.number().int().positive().default(4),
    checkpoint_every: z.number().int().positive().default(10),
  }).prefault({}).transform(resolveOptimizeConfig),
  package: z.strictObject({
    // Each dataset in a folder of its own, none inside another (a folder is replaced whole).
    out_dir: z.string().min(1).default("out/dataset"),
    formats: z.array(z.enum(["npz", "hdf5", "safetensors"])).min(1)
      .default(["npz", "hdf5", "safetensors"]),
    samples: z.number().int().min(0).default(8),
    /** Images left out of the dataset files (noted either way): upscaled > 2×, duplicates. */
    exclude: z.array(z.enum(["upscaled", "duplicates"])).default([]),
    layout: z.enum(["split", "shards", "per_image"]).default("split"),
    shard_size: z.union([
      z.number().int().positive(),
      z.string().regex(SHARD_BYTES, 'expected a size such as "256MB" or "1GiB"'),
    ]).optional(),
  }).prefault({}).refine((p) => p.shard_size === undefined || p.layout === "shards", {
    path: ["shard_size"],
    message: 'expected only with package.layout "shards"',
  }),
  schedule: z.strictObject({
    cron: z.string().default("0 3 * * *"),
    targets: z.array(z.string()).min(1).default(["package"]),
  }).prefault({}),
  executor: ExecutorSchema,
}).superRefine((c, ctx) => {
  // Checks between fields, so a config that cannot work fails at validation, not per item.
  if (c.optimize) checkOptimizeConfig(c.optimize, ctx);
  checkMethodModels(c.optimize.method, c.model, ctx);
});

/** A validated config. */
export type Config = z.infer<typeof ConfigSchema>;

/**
 * Checking and resolving the `model` section of a config: a preset fills the normalization and
 * input range, explicit fields override it, and `scaling_factor` has no default (SD v1 and SDXL
 * VAEs have the same shapes, so no shape check could catch a wrong guess). What tasks see, and
 * what their action keys hold, are the resolved numbers, never the preset's name.
 *
 * @module
 */
import { PRESET_NAMES, type PresetName, PRESETS } from "./presets.ts";

/** The model fields this module reads, as the config schema parses them. */
export interface ModelFields {
  preset?: PresetName;
  latent_channels?: number;
  scaling_factor?: number;
  shift_factor?: number;
  latents_mean?: number[];
  latents_std?: number[];
  input_range?: [number, number];
}

/** The same fields once resolved: every number known. */
export type Resolved<M extends ModelFields> =
  & Omit<M, "scaling_factor" | "shift_factor" | "input_range">
  & {
    scaling_factor: number;
    shift_factor: number;
    input_range: [number, number];
  };

/** How a refinement reports a problem (zod's refinement context, narrowed). */
interface IssueSink {
  addIssue(issue: { code: "custom"; message: string; path: (string | number)[] }): void;
}

/**
 * Reports what a `model` section lacks or contradicts, each problem on its field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const issues: { path: (string | number)[]; message: string }[] = [];
 * checkModelConfig({}, { addIssue: (i) => issues.push(i) });
 * assert.deepEqual(issues.map((i) => i.path), [["scaling_factor"]]);
 * assert.match(issues[0].message, /^required: /);
 * ```
 */
export function checkModelConfig(m: ModelFields, ctx: IssueSink): void {
  const preset = m.preset ? PRESETS[m.preset] : undefined;
  if (m.scaling_factor === undefined && !preset) {
    ctx.addIssue({
      code: "custom",
      path: ["scaling_factor"],
      message: `required: name the VAE with model.preset (${PRESET_NAMES.join(", ")}) or give ` +
        `its scaling factor; there is no default, because the SD v1 and SDXL VAEs have the same ` +
        `shapes and different factors`,
    });
  }
  if ((m.latents_mean === undefined) !== (m.latents_std === undefined)) {
    const missing = m.latents_mean === undefined ? "latents_mean" : "latents_std";
    ctx.addIssue({
      code: "custom",
      path: [missing],
      message: `expected latents_mean and latents_std together (one value per latent channel)`,
    });
  }
  if (m.latents_mean && m.latents_std && m.latents_mean.length !== m.latents_std.length) {
    ctx.addIssue({
      code: "custom",
      path: ["latents_std"],
      message: `expected as many values as latents_mean (${m.latents_mean.length}), found ` +
        `${m.latents_std.length}`,
    });
  }
  if (preset && m.latent_channels !== undefined && m.latent_channels !== preset.latentChannels) {
    ctx.addIssue({
      code: "custom",
      path: ["latent_channels"],
      message: `expected ${preset.latentChannels} (preset ${m.preset} has ` +
        `${preset.latentChannels} latent channels), found ${m.latent_channels}`,
    });
  }
  const channels = m.latent_channels ?? preset?.latentChannels;
  if (!preset && channels !== undefined && m.latents_mean && m.latents_mean.length !== channels) {
    ctx.addIssue({
      code: "custom",
      path: ["latents_mean"],
      message:
        `expected ${channels} values (model.latent_channels), found ${m.latents_mean.length}`,
    });
  }
  if (preset && m.latents_mean && m.latents_mean.length !== preset.latentChannels) {
    ctx.addIssue({
      code: "custom",
      path: ["latents_mean"],
      message: `expected ${preset.latentChannels} values (preset ${m.preset} has ` +
        `${preset.latentChannels} latent channels), found ${m.latents_mean.length}`,
    });
  }
  if (m.input_range && !(m.input_range[0] < m.input_range[1])) {
    ctx.addIssue({
      code: "custom",
      path: ["input_range"],
      message: `expected [low, high] with low < high`,
    });
  }
}

/**
 * Fills the normalization and input range from the preset where the config leaves them out.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(resolveModelConfig({ preset: "flux1" }), {
 *   preset: "flux1",
 *   scaling_factor: 0.3611,
 *   shift_factor: 0.1159,
 *   input_range: [-1, 1],
 * });
 * ```
 */
export function resolveModelConfig<M extends ModelFields>(m: M): Resolved<M> {
  const preset = m.preset ? PRESETS[m.preset] : undefined;
  const out = {
    ...m,
    scaling_factor: m.scaling_factor ?? preset?.scalingFactor ?? NaN,
    shift_factor: m.shift_factor ?? preset?.shiftFactor ?? 0,
    input_range: m.input_range ?? preset?.inputRange ?? [-1, 1],
  } as Resolved<M>;
  const mean = m.latents_mean ?? preset?.latentsMean;
  const std = m.latents_std ?? preset?.latentsStd;
  if (mean) out.latents_mean = [...mean];
  if (std) out.latents_std = [...std];
  return out;
}

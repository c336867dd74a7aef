/**
 * Checking and resolving the `optimize` section of a config. What an action key holds is what
 * the method reads: `lr` resolved to the method's default (Adam 0.1; L-BFGS 1, torch's first step
 * of a line search), and the `lbfgs` section only with `method: "lbfgs"`, so tuning L-BFGS never
 * reruns Adam's images. A learning-rate schedule asked of L-BFGS, whose line search sets every
 * step's length, is an error rather than something silently ignored.
 *
 * @module
 */

/** The optimize fields this module reads, as the config schema parses them. */
export interface OptimizeFields {
  method: "gradient" | "lbfgs" | "gradient_free" | "none";
  lr?: number;
  schedule: "constant" | "cosine";
  warmup_steps: number;
  max_steps: number;
  max_passes: number | null;
  lbfgs: { history: number };
}

/** The same fields once resolved. */
export type ResolvedOptimize<O extends OptimizeFields> = Omit<O, "lr" | "lbfgs"> & {
  lr: number;
  /** Present with `method: "lbfgs"` only. */
  lbfgs?: O["lbfgs"];
};

/** How a refinement reports a problem (zod's refinement context, narrowed). */
interface IssueSink {
  addIssue(issue: { code: "custom"; message: string; path: (string | number)[] }): void;
}

/** The learning rate a method uses when the config gives none. */
export const DEFAULT_LR = { adam: 0.1, lbfgs: 1 } as const;

/**
 * The section with `lr` resolved and the `lbfgs` settings kept only for L-BFGS.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const section = {
 *   method: "lbfgs", schedule: "constant", warmup_steps: 0, max_steps: 100, max_passes: null,
 *   lbfgs: { history: 10 },
 * } as const;
 * assert.equal(resolveOptimizeConfig(section).lr, 1);
 * assert.equal(resolveOptimizeConfig({ ...section, method: "gradient" }).lbfgs, undefined);
 * ```
 */
export function resolveOptimizeConfig<O extends OptimizeFields>(o: O): ResolvedOptimize<O> {
  const lbfgs = o.method === "lbfgs";
  return {
    ...o,
    lr: o.lr ?? (lbfgs ? DEFAULT_LR.lbfgs : DEFAULT_LR.adam),
    lbfgs: lbfgs ? o.lbfgs : undefined,
  };
}

/**
 * Reports fields of a resolved `optimize` section that contradict each other, each on its field
 * (paths from the config's root).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const issues: string[] = [];
 * checkOptimizeConfig(
 *   { method: "lbfgs", lr: 1, schedule: "cosine", warmup_steps: 0, max_steps: 100, max_passes: null },
 *   { addIssue: (i) => void issues.push(`${i.path.join(".")}: ${i.message}`) },
 * );
 * assert.match(issues[0], /^optimize\.schedule: expected "constant" with optimize\.method "lbfgs"/);
 * ```
 */
export function checkOptimizeConfig(
  o: Omit<OptimizeFields, "lbfgs">,
  ctx: IssueSink,
): void {
  const issue = (field: string, message: string) =>
    ctx.addIssue({ code: "custom", path: ["optimize", field], message });
  if (o.method === "lbfgs") {
    const why = `(its line search sets the length of every step)`;
    if (o.schedule !== "constant") {
      issue("schedule", `expected "constant" with optimize.method "lbfgs" ${why}`);
    }
    if (o.warmup_steps > 0) {
      issue("warmup_steps", `expected 0 with optimize.method "lbfgs" ${why}`);
    }
    return;
  }
  if (o.warmup_steps > 0 && o.warmup_steps >= o.max_steps) {
    issue("warmup_steps", `expected fewer warm-up steps than optimize.max_steps (${o.max_steps})`);
  } else if (o.warmup_steps > 0 && o.max_passes !== null && o.warmup_steps >= o.max_passes - 1) {
    issue(
      "warmup_steps",
      `expected fewer warm-up steps than the ${o.max_passes - 1} updates optimize.max_passes ` +
        `(${o.max_passes}) allows`,
    );
  }
}

/** The model fields {@link checkMethodModels} reads. */
export interface MethodModels {
  decoder?: unknown;
  latent_channels?: number;
  preset?: string;
}

/**
 * Reports a `model` section that cannot serve the optimize method: every method but `"none"`
 * runs the decoder, and without a decoder the latent channels must come from a preset or
 * `model.latent_channels` (paths from the config's root).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const issues: string[] = [];
 * const sink = { addIssue: (i: { path: (string | number)[]; message: string }) =>
 *   void issues.push(`${i.path.join(".")}: ${i.message}`) };
 * checkMethodModels("gradient", { latent_channels: 4 }, sink);
 * checkMethodModels("none", {}, sink);
 * checkMethodModels("none", { latent_channels: 4 }, sink);
 * assert.equal(issues.length, 2);
 * assert.match(issues[0], /^model\.decoder: required with optimize\.method "gradient"/);
 * assert.match(issues[1], /^model\.latent_channels: required without model\.decoder/);
 * ```
 */
export function checkMethodModels(
  method: OptimizeFields["method"],
  model: MethodModels,
  ctx: IssueSink,
): void {
  if (model.decoder !== undefined) return;
  if (method !== "none") {
    ctx.addIssue({
      code: "custom",
      path: ["model", "decoder"],
      message: `required with optimize.method "${method}" (it optimizes what the decoder ` +
        `reconstructs); optimize.method "none" keeps the encoder's latents without a decoder`,
    });
  } else if (model.latent_channels === undefined && model.preset === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["model", "latent_channels"],
      message: `required without model.decoder and model.preset: the number of latent ` +
        `channels C (an encoder giving 2C channels gives mean and log-variance)`,
    });
  }
}

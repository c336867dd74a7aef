/**
 * The table of vector-Jacobian product rules, op type → rule, assembled from the op families of
 * `vjp/` (one file each: elementwise, activations, normalization, matmul, conv, pooling, shape
 * ops, reductions, resize), and the fusions that run before the walk. The walk that applies
 * them lives in `vjp.ts` and knows no op.
 *
 * @module
 */
import { ACTIVATION_RULES } from "./vjp/activations.ts";
import { CONV_RULES } from "./vjp/conv.ts";
import { ELEMENTWISE_RULES } from "./vjp/elementwise.ts";
import { MATMUL_RULES } from "./vjp/matmul.ts";
import { NORMALIZATION_RULES } from "./vjp/normalization.ts";
import { POOLING_RULES } from "./vjp/pooling.ts";
import { REDUCTION_RULES } from "./vjp/reductions.ts";
import { RESIZE_RULES } from "./vjp/resize.ts";
import type { VjpFusion, VjpRule } from "./vjp/rule.ts";
import { SHAPE_OP_RULES } from "./vjp/shape_ops.ts";
import { fuseSilu } from "./vjp/silu_fusion.ts";

export type { OutputGradients, RuleBuilder, VjpFusion, VjpRule } from "./vjp/rule.ts";

/**
 * The rule table: op type → VJP rule. Keys are ONNX op types, plus the fused ops the
 * {@link VJP_FUSIONS} make.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.ok("Conv" in VJP_RULES && "Upsample" in VJP_RULES);
 * ```
 */
export const VJP_RULES: Readonly<Record<string, VjpRule>> = {
  ...ELEMENTWISE_RULES,
  ...ACTIVATION_RULES,
  ...NORMALIZATION_RULES,
  ...MATMUL_RULES,
  ...CONV_RULES,
  ...POOLING_RULES,
  ...SHAPE_OP_RULES,
  ...REDUCTION_RULES,
  ...RESIZE_RULES,
};

/**
 * The passes run, in order, over the forward nodes before the walk.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(VJP_FUSIONS.length, 1);
 * ```
 */
export const VJP_FUSIONS: readonly VjpFusion[] = [fuseSilu];

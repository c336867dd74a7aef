/**
 * Action keys: how the components of an action (its task's version, code identity and config
 * slice, the digests of its inputs, its own parameters) become one sha256, and how an output
 * becomes the digest its dependants are keyed with. The encodings are fixed: changing one
 * would turn every cached record into a miss (format 2 of the task hash, with the code
 * identity, replaced format 1's source file once; lib/dag/adoption.ts carries records over).
 *
 * @module
 */
import { canonicalJson, hashJson, sha256Hex } from "../store/canonical.ts";
import type { Json } from "../store/canonical.ts";
import type { Output, TaskComponents } from "../store/records.ts";

/**
 * The hash of a task's task-wide key components.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const a = taskHash("optimize", { version: "1", code: "ab12", config: "cd34" });
 * const b = taskHash("optimize", { version: "1", code: "ab13", config: "cd34" });
 * assert.match(a, /^[0-9a-f]{64}$/);
 * assert.notEqual(a, b); // other code, another task hash
 * ```
 */
export function taskHash(task: string, parts: TaskComponents): string {
  return hashJson({
    format: 2,
    task,
    version: parts.version,
    code: parts.code,
    config: parts.config,
  });
}

/**
 * The key of one action from its task hash, input digests and parameter hash.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const task = taskHash("square", { version: "1", code: "s", config: "c" });
 * const key = actionKey(task, { numbers: "9f86d081" });
 * assert.equal(actionKey(task, { numbers: "9f86d081" }), key);
 * assert.notEqual(actionKey(task, { numbers: "9f86d082" }), key);
 * ```
 */
export function actionKey(
  task: string,
  inputs: Record<string, string>,
  paramsHash?: string,
): string {
  return sha256Hex(`${task}\n${canonicalJson(inputs)}\n${paramsHash ?? ""}`);
}

/**
 * The hash of an item's own parameters (undefined when it has none).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const a = paramsHash({ md5: "0cc175b9c0f1b6a831c399e269772661", size: 1 });
 * assert.equal(paramsHash({ size: 1, md5: "0cc175b9c0f1b6a831c399e269772661" }), a);
 * assert.equal(paramsHash(undefined), undefined);
 * ```
 */
export function paramsHash(params: Json | undefined): string | undefined {
  return params === undefined ? undefined : sha256Hex(canonicalJson(params));
}

/**
 * The digest of an output: what a dependant's key names it by.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.notEqual(outputDigest({ objects: {}, meta: 4 }), outputDigest({ objects: {}, meta: 5 }));
 * ```
 */
export function outputDigest(out: Output): string {
  // Format 1 named the parts o and m; the digest keeps that spelling.
  return hashJson({ o: out.objects, m: out.meta });
}

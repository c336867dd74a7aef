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
 * const hash = taskHash("optimize", { version: "1", code: "ab12…", config: "cd34…" });
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
 * const key = actionKey(taskHash("square", { version: "1", code: "s", config: "c" }), {
 *   numbers: "9f86d081…",
 * });
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
 * paramsHash({ md5: "0cc175b9c0f1b6a831c399e269772661", size: 1 });
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
 * outputDigest({ objects: {}, meta: 4 });
 * ```
 */
export function outputDigest(out: Output): string {
  // Format 1 named the parts o and m; the digest keeps that spelling.
  return hashJson({ o: out.objects, m: out.meta });
}

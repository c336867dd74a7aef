/**
 * Action keys: how the components of an action (its task's version, source file and config
 * slice, the digests of its inputs, its own parameters) become one sha256, and how an output
 * becomes the digest its dependants are keyed with. The encodings are fixed: changing one
 * would turn every cached record into a miss.
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
 * const hash = taskHash("optimize", { version: "1", source: "ab12…", config: "cd34…" });
 * ```
 */
export function taskHash(task: string, parts: TaskComponents): string {
  // Format 1 named the components v, s and c; the hash keeps that spelling.
  return hashJson({ task, v: parts.version, s: parts.source, c: parts.config });
}

/**
 * The key of one action from its task hash, input digests and parameter hash.
 *
 * @example
 * ```ts
 * const key = actionKey(taskHash("square", { version: "1", source: "s", config: "c" }), {
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

/**
 * The words of the decision: why an item would run — what changed in its task's code, what an
 * interrupted action left, what a plan cannot know yet — as `explain`, `status` and the plan
 * say them.
 *
 * @module
 */
import type { Json } from "../store/canonical.ts";
import type { CodeIdentity } from "../store/records.ts";
import { UNKNOWN_FILE } from "./file_inputs.ts";

/** Why one item would run. */
export interface StaleReason {
  kind:
    | "new"
    | "failed"
    | "interrupted"
    | "forced"
    | "version"
    | "source"
    | "npm"
    | "config"
    | "inputs"
    | "params"
    | "upstream"
    | "unknown";
  text: string;
}

/**
 * What changed in a task's code: modules (`source lib/optim/adam.ts changed`, `added`,
 * `removed`) and npm packages (`onnxruntime-node 1.30.0 → 1.31.0`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const was = { modules: { "a.ts": "1", "b.ts": "2" }, npm: { sharp: "0.35.5" } };
 * const now = { modules: { "a.ts": "9", "c.ts": "3" }, npm: { sharp: "0.36.0" } };
 * assert.deepEqual(codeChanges(was, now).map((r) => r.text), [
 *   "source a.ts changed", "source b.ts removed", "source c.ts added", "sharp 0.35.5 → 0.36.0",
 * ]);
 * ```
 */
export function codeChanges(was: CodeIdentity, now: CodeIdentity): StaleReason[] {
  const out: StaleReason[] = [];
  for (const path of unionSorted(was.modules, now.modules)) {
    const [a, b] = [was.modules[path], now.modules[path]];
    if (a === b) continue;
    const what = a === undefined ? "added" : b === undefined ? "removed" : "changed";
    out.push({ kind: "source", text: `source ${path} ${what}` });
  }
  for (const name of unionSorted(was.npm, now.npm)) {
    const [a, b] = [was.npm[name], now.npm[name]];
    if (a === b) continue;
    const text = a === undefined
      ? `npm package ${name} ${b} added`
      : b === undefined
      ? `npm package ${name} ${a} removed`
      : `${name} ${a} → ${b}`;
    out.push({ kind: "npm", text });
  }
  return out;
}

function unionSorted(a: Record<string, string>, b: Record<string, string>): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}

/**
 * An action a run left unfinished, with the step its checkpoint says.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   interruptedReason({ step: 30, of: 60 }).text,
 *   "interrupted at step 30/60, resumes from its checkpoint",
 * );
 * ```
 */
export function interruptedReason(at: { step?: number; of?: number }): StaleReason {
  const where = at.step === undefined ? "" : ` at step ${at.step}${at.of ? `/${at.of}` : ""}`;
  return { kind: "interrupted", text: `interrupted${where}, resumes from its checkpoint` };
}

/**
 * Why an item whose input `name` (digest `digest`) is not known yet may run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   provisionalReason("encode", "pending:encode").text,
 *   "reruns if the output of encode changes (encode would run first)",
 * );
 * ```
 */
export function provisionalReason(name: string, digest: string): StaleReason {
  if (digest.startsWith(UNKNOWN_FILE)) {
    return {
      kind: "unknown",
      text: `input ${name} (${digest.slice(UNKNOWN_FILE.length)}) is unknown until fetched — ` +
        `reruns if its content differs`,
    };
  }
  const task = digest.slice("pending:".length);
  return {
    kind: "upstream",
    text: `reruns if the output of ${task} changes (${task} would run first)`,
  };
}

/**
 * A digest as explain shows it: a sha256 by its first 12 digits, anything else whole.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(shortDigest("ab".repeat(32)), "abababababab");
 * assert.equal(shortDigest('latent-channels:{"channels":4}'), 'latent-channels:{"channels":4}');
 * ```
 */
export function shortDigest(digest: string): string {
  return /^[0-9a-f]{64}$/.test(digest) ? digest.slice(0, 12) : digest;
}

/**
 * A config value as explain shows it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(shown(undefined), "(unset)");
 * assert.equal(shown([1, 2]), "[1,2]");
 * ```
 */
export function shown(value: Json | undefined): string {
  return value === undefined ? "(unset)" : JSON.stringify(value);
}

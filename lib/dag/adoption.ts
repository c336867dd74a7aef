/**
 * Carrying records over from before code identity. Release 0.1.0 keyed an action on its task's
 * source file alone; every key changed when the code identity replaced it. A record of that
 * kind is adopted under the new key — once, then it is a record like any other — when nothing
 * it was keyed on says its result would differ now:
 *
 * - its task's version is the current one (a task whose results changed bumps it);
 * - the source hash it recorded is one of the task's file as released ({@link RELEASED_SOURCES})
 *   or the task's file as it is now;
 * - every config field the task keys on now has the value it recorded, and every field it
 *   recorded that is no longer there is one the task no longer keys on;
 * - its inputs are the current ones, a declared file now keyed by what is read from it (e.g.
 *   encode's decoder, by its latent channels) counting as the same when the file's bytes are.
 *
 * Its library code and npm packages were never recorded, so they are taken as they are now:
 * the plan says so in one line, and `--force TASK` recomputes them.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import type { Json } from "../store/canonical.ts";
import type { ActionRecord, LegacyTaskComponents, TaskComponents } from "../store/records.ts";
import { actionKey } from "./action_key.ts";
import { isKeyed } from "./config.ts";

/**
 * The sha256 of each task's file as released in 0.1.0 (commit 98881b7) and as the last build
 * before code identity left it (commit b63c0c3), by task name.
 */
export const RELEASED_SOURCES: Readonly<Record<string, readonly string[]>> = {
  "fetch-json": ["d0a3843b4bcbaf28ab0a973f71cd41432f08738bd7c48a5a98fa5226b21a2406"],
  "fetch-images": [
    "8363480f8d3a8206c5961aa64a153f8bda0c5d1eb0da21d8d56d877c4f8a6123",
    "cc90cff5558cc16f822f59764112de9d75e9a67c2607a349945e30585816e7c2",
  ],
  "verify-sizes": ["c6f473a1453c05807ca5ae293f3e55ec4e20a91af52ef104988a0526e075bf0d"],
  "label-split": [
    "b03093e2546e01f92fae88fb2a01b8b922fd5d5202f2a1746517ade16d057623",
    "550d358ba538bce4eb9d93351ed11e2d47652eede026396d6dd83340c3795ac9",
  ],
  preprocess: ["06df1a02f8ef9c403d62326707f5d449d4b2a108c5069f28f9687caa3d1e1921"],
  encode: ["69e87351ed56e0bc18afbabf488b0aa94a7bbcee6b0f49b1c7b30f537003ef53"],
  optimize: [
    "cc8b3a64f23e59f94909c157c2e5c8c7800ad28c59f55df3fbfd9d5a8839e5a8",
    "166e2d212603416789ffe69977ea26fa76a251aa435d0d5f82532ccc0db88a65",
  ],
  package: [
    "d267c0edd39d66d0f80c1ba1b03b61c816bc518c8b1c0f631401dda629109bf7",
    "8807b4e12ee70d9cf7215101e827c37dd8629bf5fa09cd60348f6fddab1abcb4",
  ],
};

/** What adoption needs to know about a task now. */
export interface AdoptionFacts {
  task: string;
  /** `import.meta.url` of the task's file. */
  source: string;
  /** The config paths the task declares (`config`), to tell a dropped field from an unset one. */
  declared: readonly string[];
  components: TaskComponents;
  taskHash: string;
  slice: Record<string, Json>;
  /**
   * Declared files keyed by something read from them: the sha256 of the file's bytes → the
   * input digest that stands for it now, by input name.
   */
  fileInputs: Record<string, { content: string; input: string }>;
  recordedComponents(hash: string): Promise<TaskComponents | LegacyTaskComponents | null>;
  recordedSlice(hash: string): Promise<Record<string, Json> | null>;
}

/**
 * Adopts the records of a task written before code identity, one at a time as they are read:
 * the returned function gives a record back as it is, or rewritten under its new key (then
 * `adopted` is told, so that it is written back).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { taskHash } from "./action_key.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/square.ts`, "export default 2;\n");
 * const source = createHash("sha256").update("export default 2;\n").digest("hex");
 * const components = { version: "1", code: "c0de", config: "c" };
 * const legacy = { version: "1", source, config: "c" };
 * const old = {
 *   key: "old", taskHash: "legacy", inputs: {}, objects: {}, meta: 4, digest: "d", run: 1, ms: 1,
 * };
 * const adopted: string[] = [];
 * const adopt = legacyAdopter({
 *   task: "square", source: `file://${dir}/square.ts`, declared: [], components,
 *   taskHash: taskHash("square", components), slice: {}, fileInputs: {},
 *   recordedComponents: (h) => Promise.resolve(h === "legacy" ? legacy : null),
 *   recordedSlice: () => Promise.resolve({}),
 * }, (id) => adopted.push(id));
 * assert.equal((await adopt("2", old)).taskHash, taskHash("square", components));
 * assert.deepEqual(adopted, ["2"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function legacyAdopter(
  facts: AdoptionFacts,
  adopted: (id: string, record: ActionRecord) => void,
): (id: string, record: ActionRecord) => ActionRecord | Promise<ActionRecord> {
  const adoptable = new Map<string, Promise<boolean>>();
  const adopt = async (id: string, rec: ActionRecord, ok: Promise<boolean>) => {
    if (!(await ok)) return rec;
    const inputs = translatedInputs(rec.inputs, facts.fileInputs);
    if (inputs === null) return rec;
    const out: ActionRecord = {
      ...rec,
      key: actionKey(facts.taskHash, inputs, rec.params),
      taskHash: facts.taskHash,
      inputs,
    };
    adopted(id, out);
    return out;
  };
  return (id, rec) => {
    if (rec.taskHash === facts.taskHash) return rec;
    let ok = adoptable.get(rec.taskHash);
    if (!ok) {
      ok = adoptableHash(rec.taskHash, facts);
      adoptable.set(rec.taskHash, ok);
    }
    return adopt(id, rec, ok);
  };
}

/** Whether records of task hash `hash` were written before code identity and can be adopted. */
async function adoptableHash(hash: string, facts: AdoptionFacts): Promise<boolean> {
  const was = await facts.recordedComponents(hash);
  if (!was || !("source" in was) || was.version !== facts.components.version) return false;
  const released = RELEASED_SOURCES[facts.task] ?? [];
  if (!released.includes(was.source) && was.source !== await currentSource(facts.source)) {
    return false;
  }
  if (was.config === facts.components.config) return true;
  const slice = await facts.recordedSlice(was.config);
  if (!slice) return false;
  for (const [field, value] of Object.entries(facts.slice)) {
    if (JSON.stringify(slice[field]) !== JSON.stringify(value)) return false;
  }
  // A field recorded then but absent now must be one the task no longer keys on (not unset).
  return Object.keys(slice).every((field) =>
    field in facts.slice || !isKeyed(field, facts.declared)
  );
}

/** The record's inputs as keyed now (null when one of them differs). */
function translatedInputs(
  inputs: Record<string, string>,
  files: AdoptionFacts["fileInputs"],
): Record<string, string> | null {
  const out = { ...inputs };
  for (const [name, { content, input }] of Object.entries(files)) {
    if (out[name] === undefined || out[name] === input) continue;
    if (out[name] !== content) return null;
    out[name] = input;
  }
  return out;
}

async function currentSource(url: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(fileURLToPath(url))).digest("hex");
}

/**
 * The one line a plan says about adopted records.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   adoptionNote(new Map([["encode", 64], ["optimize", 64]])),
 *   "128 records adopted without library identity (encode 64, optimize 64); --force TASK " +
 *     "recomputes them",
 * );
 * ```
 */
export function adoptionNote(counts: ReadonlyMap<string, number>): string {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const each = [...counts].map(([task, n]) => `${task} ${n}`).join(", ");
  return `${total} record${total === 1 ? "" : "s"} adopted without library identity (${each}); ` +
    `--force TASK recomputes them`;
}

/**
 * A task's identity in every key: its version, its code identity (the modules and npm packages
 * that compute its results, see code_identity.ts) and the hash of its config slice, and the
 * task hash made of them. A plan, a run and a remote worker compute it here alike, so a worker
 * running other code is told what differs instead of recording results under the
 * coordinator's keys.
 *
 * @module
 */
import { hashJson, type Json } from "../store/canonical.ts";
import type { TaskComponents } from "../store/records.ts";
import { taskHash } from "./action_key.ts";
import { type CodeReader, type TaskCode } from "./code_identity.ts";
import { TaskContractError } from "./errors.ts";
import type { Task } from "./task.ts";

/** A task's task-wide key components and their hash. */
export interface TaskIdentity {
  /** The components (the code and the config as hashes). */
  components: TaskComponents;
  /** The task hash every action record of this task names. */
  hash: string;
  /** The code identity the `code` component is the hash of. */
  code: TaskCode;
}

/**
 * The identity of `task` with the config slice `slice` (see lib/dag/config.ts `configSlice`),
 * its code read by `reader`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CodeReader } from "./code_identity.ts";
 * import { aggregate } from "./task.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/total.ts`, "export default 1;\n");
 * const total = aggregate({
 *   name: "total", deps: [], config: ["toy.count"], version: "1",
 *   source: new URL(`file://${dir}/total.ts`).href, describe: "add them up",
 *   run: () => Promise.resolve({ objects: {}, meta: null }),
 * });
 * const reader = new CodeReader();
 * const a = await taskIdentity(total, { "toy.count": 3 }, reader);
 * const b = await taskIdentity(total, { "toy.count": 4 }, reader);
 * assert.equal(a.components.version, "1");
 * assert.deepEqual(Object.keys(a.code.identity.modules), ["total.ts"]);
 * assert.notEqual(a.hash, b.hash); // another config slice, another identity
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function taskIdentity(
  task: Task,
  slice: Record<string, Json>,
  reader: CodeReader,
): Promise<TaskIdentity> {
  if (!task.source.startsWith("file:")) {
    throw new TaskContractError(
      `task "${task.name}": expected a file: URL for its source, found ${task.source}`,
    );
  }
  const code = await reader.read(task.source);
  const components = { version: task.version, code: code.hash, config: hashJson(slice) };
  return { components, hash: taskHash(task.name, components), code };
}

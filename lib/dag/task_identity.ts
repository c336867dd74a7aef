/**
 * A task's identity in every key: its version, the hash of its source file and the hash of its
 * config slice, and the task hash made of them. A plan, a run and a remote worker compute it
 * here alike, so a worker running another copy of a task is told so instead of recording
 * results under the coordinator's keys.
 *
 * @module
 */
import { hashJson, type Json, sha256Hex } from "../store/canonical.ts";
import type { TaskComponents } from "../store/records.ts";
import { taskHash } from "./action_key.ts";
import { TaskContractError } from "./errors.ts";
import type { Task } from "./task.ts";

/** A task's task-wide key components and their hash. */
export interface TaskIdentity {
  /** The components (the config as the hash of `slice`). */
  components: TaskComponents;
  /** The task hash every action record of this task names. */
  hash: string;
}

/**
 * The identity of `task` with the config slice `slice` (see lib/dag/config.ts `configSlice`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { aggregate } from "./task.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/total.ts`, "export default 1;\n");
 * const total = aggregate({
 *   name: "total", deps: [], config: ["toy.count"], version: "1",
 *   source: new URL(`file://${dir}/total.ts`).href, describe: "add them up",
 *   run: () => Promise.resolve({ objects: {}, meta: null }),
 * });
 * const a = await taskIdentity(total, { "toy.count": 3 });
 * const b = await taskIdentity(total, { "toy.count": 4 });
 * assert.equal(a.components.version, "1");
 * assert.notEqual(a.hash, b.hash); // another config slice, another identity
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function taskIdentity(task: Task, slice: Record<string, Json>): Promise<TaskIdentity> {
  const components = {
    version: task.version,
    source: await sourceHash(task),
    config: hashJson(slice),
  };
  return { components, hash: taskHash(task.name, components) };
}

async function sourceHash(task: Task): Promise<string> {
  const url = new URL(task.source);
  if (url.protocol !== "file:") {
    throw new TaskContractError(
      `task "${task.name}": expected a file: URL for its source, found ${task.source}`,
    );
  }
  return sha256Hex(await Deno.readFile(url));
}

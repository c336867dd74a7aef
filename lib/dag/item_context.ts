/**
 * The context one per-item action runs in: its task's context, its key, its checkpoints (kept
 * in the store, named by a small reference file per action key) and the alias index.
 *
 * @module
 */
import { readDirOrNull, readTextOrNull } from "../base/fs.ts";
import { join } from "node:path";
import { type ObjectStore, writeFileAtomic } from "../store/objects.ts";
import type { ItemContext, TaskContext } from "./task.ts";
import type { Work } from "./pool.ts";

/** Where the checkpoint reference of an action lives. */
export function checkpointPath(cacheDir: string, task: string, key: string): string {
  return join(cacheDir, "checkpoints", task, key);
}

/**
 * The keys of the actions of `task` that left a checkpoint (a run interrupted them).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const cache = await Deno.makeTempDir();
 * assert.equal((await checkpointKeys(cache, "optimize")).size, 0);
 * await Deno.mkdir(`${cache}/checkpoints/optimize`, { recursive: true });
 * await Deno.writeTextFile(checkpointPath(cache, "optimize", "k1"), "ab".repeat(32));
 * assert.deepEqual([...await checkpointKeys(cache, "optimize")], ["k1"]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function checkpointKeys(cacheDir: string, task: string): Promise<Set<string>> {
  const entries = await readDirOrNull(join(cacheDir, "checkpoints", task)) ?? [];
  // A reference half-written when a run was killed is no checkpoint.
  return new Set(entries.filter((e) => e.isFile && !e.name.includes(".tmp-")).map((e) => e.name));
}

/**
 * How far the action with key `key` got before a run was interrupted, from the checkpoint it
 * left (read by `progress`, the task's reader of its checkpoints; `{}` when the task has none or
 * cannot read it); null when it left none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const digest = await store.put(new Uint8Array([30]));
 * await Deno.mkdir(`${cache}/checkpoints/optimize`, { recursive: true });
 * await Deno.writeTextFile(checkpointPath(cache, "optimize", "k1"), digest);
 * const read = (bytes: Uint8Array) => ({ step: bytes[0], of: 60 });
 * assert.deepEqual(await checkpointProgress(store, "optimize", "k1", read), { step: 30, of: 60 });
 * assert.equal(await checkpointProgress(store, "optimize", "k2", read), null);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function checkpointProgress(
  store: ObjectStore,
  task: string,
  key: string,
  progress: (checkpoint: Uint8Array) => { step: number; of: number } | undefined,
): Promise<{ step?: number; of?: number } | null> {
  const digest = (await readTextOrNull(checkpointPath(store.root, task, key)))?.trim();
  if (!digest || !(await store.has(digest))) return null;
  try {
    return progress(await Deno.readFile(store.path(digest))) ?? {};
  } catch (e) {
    // A checkpoint this code cannot read: the run that resumes it says so; a plan says only
    // that there is one.
    if (!(e instanceof Error)) throw e;
    return {};
  }
}

/**
 * The context of one action: the task's context plus its key and checkpoints; `steps` hears
 * how far the action is (a remote worker has no display: it hears nothing).
 */
export function itemContext(
  ctx: TaskContext<unknown>,
  task: string,
  work: Work,
  aliases: Pick<ItemContext<unknown>, "lookupAlias" | "announceAlias"> = {
    lookupAlias: () => Promise.resolve(null),
    announceAlias: () => Promise.resolve(),
  },
  steps: ItemContext<unknown>["steps"] = () => {},
): ItemContext<unknown> {
  const path = checkpointPath(ctx.cacheDir, task, work.key);
  const store = ctx.store;
  return {
    ...ctx,
    key: work.key,
    async loadCheckpoint() {
      const digest = await checkpointDigest(path);
      if (digest === null) return null;
      return await store.has(digest) ? await store.get(digest) : null;
    },
    steps,
    lookupAlias: (name) => aliases.lookupAlias(name),
    announceAlias: (name, digest) => aliases.announceAlias(name, digest),
    async saveCheckpoint(bytes) {
      const previous = await checkpointDigest(path);
      const digest = await store.put(bytes);
      await store.syncDirs();
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      await writeFileAtomic(path, new TextEncoder().encode(digest));
      work.checkpointed = true;
      // Only this reference named the previous checkpoint; dropping it keeps the store small.
      if (previous && previous !== digest) await store.remove(previous);
    },
  };
}

/** The digest an item's checkpoint file names, or null when it has none yet. */
async function checkpointDigest(path: string): Promise<string | null> {
  return (await readTextOrNull(path))?.trim() ?? null;
}

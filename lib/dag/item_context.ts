/**
 * The context one per-item action runs in: its task's context, its key, its checkpoints (kept
 * in the store, named by a small reference file per action key) and the alias index.
 *
 * @module
 */
import { readDirOrNull, readTextOrNull } from "../base/fs.ts";
import { join } from "node:path";
import { writeFileAtomic } from "../store/objects.ts";
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

/** The context of one action: the task's context plus its key and checkpoints. */
export function itemContext(
  ctx: TaskContext<unknown>,
  task: string,
  work: Work,
  aliases: Pick<ItemContext<unknown>, "lookupAlias" | "announceAlias"> = {
    lookupAlias: () => Promise.resolve(null),
    announceAlias: () => Promise.resolve(),
  },
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

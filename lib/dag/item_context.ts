/**
 * The context one per-item action runs in: its task's context, its key, its checkpoints (kept
 * in the store, named by a small reference file per action key) and the alias index.
 *
 * @module
 */
import { readTextOrNull } from "../base/fs.ts";
import { join } from "node:path";
import { writeFileAtomic } from "../store/objects.ts";
import type { ItemContext, TaskContext } from "./task.ts";
import type { Work } from "./work_pool.ts";

/** Where the checkpoint reference of an action lives. */
export function checkpointPath(cacheDir: string, task: string, key: string): string {
  return join(cacheDir, "checkpoints", task, key);
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

/**
 * The context one per-item action runs in: its task's context, its key, its checkpoints (kept
 * in the store, named by a small reference file per action key) and the alias index.
 *
 * @module
 */
import { join } from "node:path";
import { writeFileAtomic } from "../store/objects.ts";
import type { ItemContext, TaskContext } from "./task.ts";
import type { Work } from "./work_pool.ts";

/** Where the checkpoint reference of an action lives. */
export function checkpointPath(cacheDir: string, task: string, key: string): string {
  return join(cacheDir, "checkpoints", task, key);
}

/** The context of one action: the task's context plus its key and checkpoints. */
export function itemContext(
  ctx: TaskContext<unknown>,
  task: string,
  work: Work,
  aliases: (name: string) => Promise<{ digest: string; size: number } | null> = () =>
    Promise.resolve(null),
): ItemContext<unknown> {
  const path = checkpointPath(ctx.cacheDir, task, work.key);
  const store = ctx.store;
  return {
    ...ctx,
    key: work.key,
    async loadCheckpoint() {
      let digest: string;
      try {
        digest = (await Deno.readTextFile(path)).trim();
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return null;
        throw e;
      }
      return await store.has(digest) ? await store.get(digest) : null;
    },
    lookupAlias: (name) => aliases(name),
    async saveCheckpoint(bytes) {
      const previous = (await Deno.readTextFile(path).catch(() => "")).trim();
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

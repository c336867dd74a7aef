/**
 * Lays a set of stored objects out as a directory users read (e.g. `out/`): written aside,
 * fsynced, then swapped in by rename, so a reader never sees half a dataset. Publishing the
 * same objects again is a no-op.
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { hashJson } from "./canonical.ts";
import { fsyncDir, type ObjectStore } from "./objects.ts";

const MARKER = ".latentforge.json";

/**
 * Replaces `dir` with the files `objects` names (relative path → digest).
 *
 * @example
 * ```ts
 * import type { ObjectStore } from "./objects.ts";
 * declare const store: ObjectStore;
 * declare const digest: string; // of an object already in the store
 * await publishDirectory(store, { "train/latents.npz": digest }, "out");
 * ```
 */
export async function publishDirectory(
  store: ObjectStore,
  objects: Record<string, string>,
  dir: string,
): Promise<void> {
  const target = resolve(dir);
  const digest = hashJson(objects);
  const current = await Deno.readTextFile(join(target, MARKER)).catch(() => null);
  if (current !== null && JSON.parse(current).digest === digest) return;
  const parent = dirname(target);
  await Deno.mkdir(parent, { recursive: true });
  await removeLeftovers(parent, basename(target));
  const aside = `${target}.tmp-${crypto.randomUUID()}`;
  const dirs = new Set<string>([aside]);
  for (const [rel, d] of Object.entries(objects).sort()) {
    if (rel.split("/").some((p) => p === ".." || p === "") || rel.startsWith("/")) {
      throw new Error(`cannot publish ${JSON.stringify(rel)}: expected a relative path`);
    }
    const path = join(aside, rel);
    await Deno.mkdir(dirname(path), { recursive: true });
    dirs.add(dirname(path));
    await Deno.copyFile(store.path(d), path);
    const f = await Deno.open(path, { read: true, write: true });
    await f.sync();
    f.close();
  }
  await Deno.writeTextFile(
    join(aside, MARKER),
    JSON.stringify({ digest, files: objects }, null, 1),
  );
  for (const d of dirs) await fsyncDir(d);
  const old = `${target}.old-${crypto.randomUUID()}`;
  const exists = await Deno.stat(target).then(() => true, () => false);
  if (exists) await Deno.rename(target, old);
  await Deno.rename(aside, target);
  await fsyncDir(parent);
  if (exists) await Deno.remove(old, { recursive: true });
}

/** Half-written or replaced copies an interrupted publish left beside the directory. */
async function removeLeftovers(parent: string, name: string): Promise<void> {
  for await (const entry of Deno.readDir(parent)) {
    if (entry.name.startsWith(`${name}.tmp-`) || entry.name.startsWith(`${name}.old-`)) {
      await Deno.remove(join(parent, entry.name), { recursive: true }).catch(() => {});
    }
  }
}

/**
 * Taking turns on a published folder. Two runs publishing to one folder (even from different
 * caches) take turns on an advisory lock (flock) of its parent folder for the swap and for
 * repairs. A copy being written aside (`<dir>.tmp-<owner>`) is locked by its writer until it is
 * swapped in, so it is removed as a leftover only once its writer is gone: the system drops a
 * lock when its process exits, however it exits.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { lstatOrNull } from "../base/fs.ts";

/** Temp names a publish gives (`….tmp-<pid>-<random>`, `….old-<pid>-<random>`). */
const TEMP = /\.(tmp|old)-(\d+-[0-9a-f]{8})$/;

/**
 * Runs `fn` holding an exclusive advisory lock on `target`'s parent folder (made if missing).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const answer = await withParentLock(`${dir}/out`, async () => {
 *   // Another process asking for the lock now would wait; this one cannot take it twice.
 *   const other = await Deno.open(dir, { read: true });
 *   const free = await other.tryLock(true);
 *   other.close();
 *   return free;
 * });
 * assert.equal(answer, false);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function withParentLock<T>(target: string, fn: () => Promise<T>): Promise<T> {
  const parent = dirname(target);
  // Made only when missing: a reader (status, explain, a plan) may hold no write grant there.
  if ((await lstatOrNull(parent)) === null) await Deno.mkdir(parent, { recursive: true });
  const handle = await Deno.open(parent, { read: true });
  try {
    await handle.lock(true);
    return await fn();
  } finally {
    handle.close();
  }
}

/**
 * A unique suffix naming the writing process: `<pid>-<random>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.match(ownerTag(), new RegExp(`^${Deno.pid}-[0-9a-f]{8}$`));
 * ```
 */
export function ownerTag(): string {
  return `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Whether a name is one a publish gives its temp copies (`….tmp-<owner>`, `….old-<owner>`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(isOwnedTemp(`out.tmp-${ownerTag()}`), true);
 * assert.equal(isOwnedTemp("out.tmp-backup"), false);
 * ```
 */
export function isOwnedTemp(name: string): boolean {
  return TEMP.test(name);
}

/**
 * Makes the copy `aside` is to become, locked by this process (under the parent's lock, where
 * leftovers are judged) until the returned handle is closed: another publisher sees it is in
 * use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const hold = await makeHeldAside(`${dir}/out`, `${dir}/out.tmp-${ownerTag()}`);
 * await removeLeftovers(dir, "out"); // a live writer's copy stays
 * assert.equal([...Deno.readDirSync(dir)].length, 1);
 * hold.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function makeHeldAside(target: string, aside: string): Promise<Deno.FsFile> {
  return await withParentLock(target, async () => {
    await Deno.mkdir(aside);
    const handle = await Deno.open(aside, { read: true });
    await handle.lock(true);
    return handle;
  });
}

/**
 * Half-written or replaced copies beside `name` that an interrupted publish left (to be called
 * holding the parent's lock): a copy aside whose writer no longer holds its lock, and any
 * `.old-` folder (those are only made and removed under the lock).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/out.old-4244-0a1b2c3d`);
 * await Deno.mkdir(`${dir}/out.tmp-backup`); // not a name latentforge gives
 * await withParentLock(`${dir}/out`, () => removeLeftovers(dir, "out"));
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["out.tmp-backup"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function removeLeftovers(parent: string, name: string): Promise<void> {
  for await (const entry of Deno.readDir(parent)) {
    const m = TEMP.exec(entry.name);
    if (!m || entry.name !== `${name}.${m[1]}-${m[2]}` || !entry.isDirectory) continue;
    const path = join(parent, entry.name);
    if (m[1] === "tmp" && !(await unlocked(path))) continue;
    await Deno.remove(path, { recursive: true });
  }
}

/**
 * Temp files of an interrupted repair inside a published folder (to be called holding the
 * parent's lock).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/latents.npz.tmp-4242-0a1b2c3d`, "half");
 * await Deno.writeTextFile(`${dir}/latents.npz`, "whole");
 * await removeInnerLeftovers(dir);
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["latents.npz"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function removeInnerLeftovers(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    const m = TEMP.exec(e.name);
    if (m && m[1] === "tmp" && e.isFile) await Deno.remove(path);
    else if (e.isDirectory) await removeInnerLeftovers(path);
  }
}

/** Whether nobody holds the lock of a folder (its writer is gone). */
async function unlocked(path: string): Promise<boolean> {
  const handle = await Deno.open(path, { read: true });
  try {
    return await handle.tryLock(true);
  } finally {
    handle.close();
  }
}

/**
 * The folders a cache has published to, kept in `<cache>/published.json` so that `verify` can
 * check them and `--repair` can set them right.
 *
 * @module
 */
import { join } from "node:path";
import { writeFileAtomic } from "./objects.ts";
import { ownerTag } from "./publish_lock.ts";

/** The list of folders a cache published to, so `verify` can check them. */
const PUBLISHED = "published.json";

/**
 * The folders a cache has published to (from `<cache>/published.json`), whether or not they
 * are still there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const cache = await Deno.makeTempDir();
 * assert.deepEqual(await publishedFolders(cache), []);
 * await recordPublished(cache, "/data/out/ffhq");
 * await recordPublished(cache, "/data/out/bsds500");
 * assert.deepEqual(await publishedFolders(cache), ["/data/out/bsds500", "/data/out/ffhq"]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function publishedFolders(cacheDir: string): Promise<string[]> {
  try {
    const list = JSON.parse(await Deno.readTextFile(join(cacheDir, PUBLISHED)));
    return Array.isArray(list) ? list.filter((d) => typeof d === "string") : [];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return [];
    throw e;
  }
}

/**
 * Adds `dir` to the folders `cacheDir` published to (see {@link publishedFolders}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const cache = await Deno.makeTempDir();
 * await recordPublished(cache, "/data/out/ffhq");
 * await recordPublished(cache, "/data/out/ffhq"); // once is enough
 * assert.deepEqual(await publishedFolders(cache), ["/data/out/ffhq"]);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function recordPublished(cacheDir: string, dir: string): Promise<void> {
  const list = await publishedFolders(cacheDir);
  if (list.includes(dir)) return;
  // Written in the cache's tmp/, whose leftovers gc removes, then renamed into place.
  await Deno.mkdir(join(cacheDir, "tmp"), { recursive: true });
  const path = join(cacheDir, PUBLISHED);
  const tmp = join(cacheDir, "tmp", `${PUBLISHED}.${ownerTag()}`);
  const text = JSON.stringify([...list, dir].sort(), null, 1);
  await writeFileAtomic(path, new TextEncoder().encode(text), { tempPath: tmp });
}

/**
 * Shell-style patterns for the shards and files a dataset names (`/data/laion/*.tar`,
 * `shards/0000[0-4].tar`): `*` and `?` within one path segment, `[…]` classes (`[!…]` negated),
 * matched against the folders' entries and returned in sorted order. A name starting with a dot
 * matches only a pattern that starts with one, as in the shell.
 *
 * @module
 */
import { join } from "node:path";

/** Raised when a pattern matches no file. */
export class GlobError extends Error {
  override readonly name = "GlobError";
}

/**
 * Whether `path` has a wildcard.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(hasGlob("shards/*.tar"), true);
 * assert.equal(hasGlob("shards/00000.tar"), false);
 * ```
 */
export function hasGlob(path: string): boolean {
  return /[*?[]/.test(path);
}

/**
 * The files a pattern matches, sorted; a path without wildcards is returned as it is (whether
 * it exists is for its reader to say). A pattern that matches nothing throws {@link GlobError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   for (const name of ["b.tar", "a.tar", "a.txt"]) await Deno.writeTextFile(`${dir}/${name}`, "");
 *   assert.deepEqual(await expandGlob(`${dir}/*.tar`), [`${dir}/a.tar`, `${dir}/b.tar`]);
 *   await assert.rejects(expandGlob(`${dir}/*.parquet`), GlobError);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function expandGlob(pattern: string): Promise<string[]> {
  if (!hasGlob(pattern)) return [pattern];
  const parts = pattern.split("/");
  const first = parts.findIndex(hasGlob);
  const base = globBase(pattern);
  const found: string[] = [];
  const walk = async (dir: string, k: number) => {
    const test = segmentRegex(parts[k]);
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
      throw e;
    }
    for (const e of entries) {
      if (!test.test(e.name)) continue;
      const path = dir === "." && !pattern.startsWith("./") ? e.name : join(dir, e.name);
      if (k === parts.length - 1) found.push(path);
      else await walk(path, k + 1);
    }
  };
  await walk(base, first);
  if (found.length === 0) throw new GlobError(`${pattern} matches no file`);
  return found.sort();
}

/**
 * The folder a pattern lists: its path up to the first segment with a wildcard (the pattern
 * itself when it has none).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(globBase("/data/laion/*.tar"), "/data/laion");
 * assert.equal(globBase("shards/0000[0-4]/*.tar"), "shards");
 * assert.equal(globBase("*.tar"), ".");
 * ```
 */
export function globBase(pattern: string): string {
  if (!hasGlob(pattern)) return pattern;
  const parts = pattern.split("/");
  const base = parts.slice(0, parts.findIndex(hasGlob)).join("/");
  return base || (pattern.startsWith("/") ? "/" : ".");
}

/**
 * Every pattern expanded, in the order given (each pattern's matches sorted), without repeats.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(await expandGlobs(["b.tar", "a.tar", "b.tar"]), ["b.tar", "a.tar"]);
 * ```
 */
export async function expandGlobs(patterns: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of patterns) out.push(...await expandGlob(p));
  return [...new Set(out)];
}

function segmentRegex(segment: string): RegExp {
  let re = "";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = segment.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        let cls = segment.slice(i + 1, end).replaceAll("\\", "\\\\");
        if (cls.startsWith("!")) cls = "^" + cls.slice(1);
        re += `[${cls}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  // As in the shell, a leading dot is matched only by a pattern that starts with one.
  return new RegExp(segment.startsWith(".") ? `^${re}$` : `^(?!\\.)${re}$`);
}

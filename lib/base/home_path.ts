/**
 * Paths under the home directory written as a shell user writes them: `~`, `~/photos`,
 * `$HOME/photos`, `${HOME}/photos`. A shell expands these only where a word starts with them,
 * so `--set dataset.path=~/photos` and a config's `"path": "~/photos"` reach latentforge
 * unexpanded; every path latentforge reads from its arguments and configs goes through
 * {@link expandHome}.
 *
 * @module
 */

/** Raised when a path names the home directory and `HOME` is not set. */
export class HomePathError extends Error {
  override readonly name = "HomePathError";
}

/** `~`, `$HOME` or `${HOME}`, alone or followed by `/`. */
const HOME_PREFIX = /^(~|\$HOME|\$\{HOME\})(?=\/|$)/;

/**
 * `path` with a leading `~`, `$HOME` or `${HOME}` replaced by the home directory (`home`,
 * default the `HOME` environment variable); anything else is returned as it is (`~user/…`
 * included: only the current user's home is known).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(expandHome("~/photos", "/home/me"), "/home/me/photos");
 * assert.equal(expandHome("$HOME/photos", "/home/me"), "/home/me/photos");
 * assert.equal(expandHome("${HOME}", "/home/me"), "/home/me");
 * assert.equal(expandHome("data/~/photos", "/home/me"), "data/~/photos");
 * assert.equal(expandHome("$HOMEWORK/a", "/home/me"), "$HOMEWORK/a");
 * assert.throws(() => expandHome("~/photos", null), HomePathError);
 * ```
 */
export function expandHome(path: string, home: string | null = homeDirectory()): string {
  const match = HOME_PREFIX.exec(path);
  if (!match) return path;
  if (!home) {
    throw new HomePathError(
      `${path} names the home directory (${match[1]}), but HOME is not set: ` +
        `write the path out in full`,
    );
  }
  return home.replace(/\/+$/, "") + path.slice(match[0].length) || "/";
}

/**
 * Whether `path` starts with the home directory's name (`~`, `$HOME`, `${HOME}`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(namesHome("~/photos"), true);
 * assert.equal(namesHome("photos/~"), false);
 * ```
 */
export function namesHome(path: string): boolean {
  return HOME_PREFIX.test(path);
}

/** `HOME`, or null when it is not set. */
function homeDirectory(): string | null {
  return Deno.env.get("HOME") || null;
}

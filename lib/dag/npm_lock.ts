/**
 * Which npm packages, at which versions, a set of specifiers runs: bare specifiers through the
 * project's import map (`deno.json` `imports`), `npm:` specifiers through the lock file
 * (`deno.lock`, format 4 or 5), and every package they depend on, optional ones included — the
 * packages of every platform, so a key does not depend on the machine that computes it.
 * Without a lock file a package is keyed by the version its specifier names.
 *
 * @module
 */

/** Raised for a specifier the import map and the lock file cannot resolve. */
export class NpmResolveError extends Error {
  override readonly name = "NpmResolveError";
}

/** The parts of `deno.lock` read here. */
interface LockFile {
  version?: string;
  specifiers?: Record<string, string>;
  npm?: Record<string, { dependencies?: string[]; optionalDependencies?: string[] }>;
}

/** A project's import map and lock file, as they resolve npm packages. */
export class NpmResolver {
  readonly #imports: Record<string, string>;
  readonly #lock: LockFile | null;
  /** Lock keys (`name@version`) by package name. */
  readonly #byName = new Map<string, string[]>();

  /**
   * `imports` is `deno.json`'s import map; `lock` the parsed `deno.lock` (null without one).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   *
   * const npm = new NpmResolver({ sharp: "npm:sharp@0.35.5" }, {
   *   specifiers: { "npm:sharp@0.35.5": "0.35.5" },
   *   npm: {
   *     "sharp@0.35.5": { dependencies: ["detect-libc"], optionalDependencies: ["@img/sharp-win32-x64"] },
   *     "detect-libc@2.1.2": {},
   *     "@img/sharp-win32-x64@0.35.5": {},
   *   },
   * });
   * assert.deepEqual(npm.classify("sharp"), { npm: "sharp@0.35.5" });
   * assert.deepEqual(npm.packages(["sharp@0.35.5"]), [
   *   "@img/sharp-win32-x64@0.35.5", "detect-libc@2.1.2", "sharp@0.35.5",
   * ]);
   * ```
   */
  constructor(imports: Record<string, string>, lock: unknown) {
    this.#imports = imports;
    this.#lock = lock as LockFile | null;
    for (const key of Object.keys(this.#lock?.npm ?? {})) {
      const name = packageName(key);
      this.#byName.set(name, [...this.#byName.get(name) ?? [], key]);
    }
  }

  /**
   * What a specifier of a module is: a local or remote module (`{ module }`, for a bare
   * specifier the import map sends to a file), an npm package (`{ npm }`, its lock key or
   * `name@version` as written), a built-in (`{ builtin }`), or null for a relative specifier
   * the caller resolves itself.
   */
  classify(
    specifier: string,
  ): { module: string } | { npm: string } | { builtin: string } | { other: string } | null {
    if (/^\.{0,2}\//.test(specifier) || specifier.startsWith("file:")) return null;
    if (specifier.startsWith("node:")) return { builtin: specifier };
    if (specifier.startsWith("npm:")) return { npm: this.#npmKey(specifier) };
    if (/^[a-z][a-z0-9+.-]*:/i.test(specifier)) return { other: specifier };
    const mapped = this.#mapped(specifier);
    if (mapped === undefined) {
      throw new NpmResolveError(
        `"${specifier}" is not in the import map of deno.json: expected an entry such as ` +
          `"${specifier}": "npm:${specifier}@<version>"`,
      );
    }
    if (mapped.startsWith("npm:")) return { npm: this.#npmKey(mapped) };
    if (/^[a-z][a-z0-9+.-]*:/i.test(mapped) && !mapped.startsWith("file:")) {
      return { other: mapped };
    }
    return { module: mapped };
  }

  /**
   * Every package that the packages `roots` (lock keys or `name@version`) run, themselves
   * included, sorted.
   */
  packages(roots: Iterable<string>): string[] {
    const seen = new Set<string>();
    const stack = [...roots];
    while (stack.length > 0) {
      const key = stack.pop()!;
      if (seen.has(key)) continue;
      seen.add(key);
      const entry = this.#lock?.npm?.[key];
      for (const dep of [...entry?.dependencies ?? [], ...entry?.optionalDependencies ?? []]) {
        stack.push(this.#dependencyKey(dep, key));
      }
    }
    return [...seen].sort();
  }

  #mapped(specifier: string): string | undefined {
    if (specifier in this.#imports) return this.#imports[specifier];
    // A prefix entry ("lib/": "./lib/") maps everything under it.
    let best: string | undefined;
    for (const key of Object.keys(this.#imports)) {
      if (key.endsWith("/") && specifier.startsWith(key) && key.length > (best?.length ?? 0)) {
        best = key;
      }
    }
    if (best !== undefined) return this.#imports[best] + specifier.slice(best.length);
    // "pkg/sub/path" through an entry "pkg": "npm:pkg@1.2.3", as Deno resolves it.
    const name = specifier.startsWith("@")
      ? specifier.split("/").slice(0, 2).join("/")
      : specifier.split("/")[0];
    const target = this.#imports[name];
    return target?.startsWith("npm:") && name !== specifier
      ? `${target}${specifier.slice(name.length)}`
      : undefined;
  }

  /** The lock key of an `npm:name@range/sub/path` specifier. */
  #npmKey(specifier: string): string {
    const bare = specifier.slice("npm:".length).replace(/^\//, "");
    const at = bare.indexOf("@", 1);
    const slash = bare.indexOf("/", bare.startsWith("@") ? bare.indexOf("/") + 1 : 0);
    const name = at < 0 ? (slash < 0 ? bare : bare.slice(0, slash)) : bare.slice(0, at);
    const range = at < 0 ? "" : bare.slice(at + 1, slash > at ? slash : undefined);
    const version = this.#lock?.specifiers?.[`npm:${name}${range ? `@${range}` : ""}`];
    if (version !== undefined) return `${name}@${version}`;
    const only = this.#byName.get(name);
    if (only?.length === 1) return only[0];
    return range ? `${name}@${range}` : name;
  }

  /** The lock key of dependency `dep` of package `of` (`name`, `name@version`, or an alias). */
  #dependencyKey(dep: string, of: string): string {
    // An alias: "string-width-cjs@npm:string-width@4.2.3".
    const alias = dep.indexOf("@npm:");
    if (alias > 0) return dep.slice(alias + "@npm:".length);
    if (dep.indexOf("@", 1) > 0) return dep;
    const keys = this.#byName.get(dep);
    if (keys?.length === 1) return keys[0];
    throw new NpmResolveError(
      `deno.lock: dependency "${dep}" of ${of} names no single package (found ` +
        `${keys?.length ?? 0}); run "deno install" to refresh the lock file`,
    );
  }
}

/** The package name of a lock key (`@scope/name@1.2.3_peer@4` → `@scope/name`). */
export function packageName(key: string): string {
  const at = key.indexOf("@", 1);
  return at < 0 ? key : key.slice(0, at);
}

/** The version part of a lock key (`name@1.2.3` → `1.2.3`). */
export function packageVersion(key: string): string {
  const at = key.indexOf("@", 1);
  return at < 0 ? "" : key.slice(at + 1);
}

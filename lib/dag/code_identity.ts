/**
 * The code that computes a task's results, as part of its key: the modules its task file
 * reaches by run-time imports (Worker scripts and files named by `new URL(…, import.meta.url)`
 * included, type-only imports not; see module_imports.ts), transitively — except the engine
 * (`lib/dag`, `lib/store`, `lib/cli`, `lib/executor`, this checkout's or the task's project's),
 * which runs results but computes none —
 * each hashed by what it says rather than how it is laid out (module_hash.ts), and the
 * `name@version` of every npm package that code runs, from `deno.lock` (npm_lock.ts). The
 * Deno version is not part of it.
 *
 * A module's hash is remembered by its path, size, modification time and inode — in memory for
 * the process and, through a {@link ModuleCache}, in the cache's records — so an unchanged tree
 * parses nothing.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { canonicalJson, hashJson } from "../store/canonical.ts";
import type { CodeIdentity, ModuleHashRecord } from "../store/records.ts";
import { statOrNull } from "../base/fs.ts";
import { MODULE_HASH_FORMAT, tokenHash } from "./module_hash.ts";
import { ModuleImportError, type ModuleReference, runtimeReferences } from "./module_imports.ts";
import { tokenize } from "./module_tokens.ts";
import { NpmResolver, packageName, packageVersion } from "./npm_lock.ts";

/** What is remembered of a module between runs. */
type CachedModule = ModuleHashRecord;

export type { CodeIdentity };

/** Where module hashes are remembered between processes (the cache's records). */
export interface ModuleCache {
  /** Every remembered module, by absolute path. */
  moduleHashes(): Promise<Map<string, ModuleHashRecord>>;
  /** Remembers modules hashed in this process. */
  putModuleHashes(entries: [string, ModuleHashRecord][]): Promise<void>;
}

/** A task's code: its identity and what it was read from. */
export interface TaskCode {
  identity: CodeIdentity;
  /** sha256 of the identity's canonical JSON: the key component. */
  hash: string;
  /** Engine modules the task's code imports (not part of the identity). */
  engine: string[];
}

/** The folders of the engine, under `lib/`. */
export const ENGINE_FOLDERS = ["dag", "store", "cli", "executor"];

/** Modules hashed in this process, by path (checked against their stat on every use). */
const memory = new Map<string, CachedModule>();

/**
 * Reads the code of tasks. One reader per run or plan: it stats each module once and hashes
 * only what changed since the cache remembered it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/deno.json`, "{}");
 * await Deno.writeTextFile(`${dir}/task.ts`, 'import { half } from "./half.ts";\nexport default half;\n');
 * await Deno.writeTextFile(`${dir}/half.ts`, "export const half = (x: number) => x / 2;\n");
 * const code = await new CodeReader().read(new URL(`file://${dir}/task.ts`).href);
 * assert.deepEqual(Object.keys(code.identity.modules), ["half.ts", "task.ts"]);
 * await Deno.writeTextFile(`${dir}/half.ts`, "// halves\nexport const half = (x: number) => x / 2\n");
 * const again = await new CodeReader().read(new URL(`file://${dir}/task.ts`).href);
 * assert.equal(again.hash, code.hash); // a comment and a semicolon change nothing
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class CodeReader {
  readonly #cache?: ModuleCache;
  #remembered?: Promise<Map<string, CachedModule>>;
  readonly #fresh: [string, CachedModule][] = [];
  readonly #stats = new Map<string, Promise<CachedModule>>();
  readonly #projects = new Map<string, Promise<Project>>();
  readonly #tasks = new Map<string, Promise<TaskCode>>();
  readonly #engine = engineFolders();
  #hashed = 0;

  constructor(cache?: ModuleCache) {
    this.#cache = cache;
  }

  /** How many modules this reader had to hash (those neither this process nor the cache knew). */
  get hashed(): number {
    return this.#hashed;
  }

  /** The code of the task whose file is `source` (a `file:` URL). */
  read(source: string): Promise<TaskCode> {
    let code = this.#tasks.get(source);
    if (!code) {
      code = this.#read(source);
      this.#tasks.set(source, code);
    }
    return code;
  }

  /** Remembers the modules hashed by this reader in the cache (one commit). */
  async remember(): Promise<void> {
    const fresh = this.#fresh.splice(0);
    if (fresh.length > 0 && this.#cache) await this.#cache.putModuleHashes(fresh);
  }

  async #read(source: string): Promise<TaskCode> {
    const file = fileURLToPath(source);
    const project = await this.#project(file);
    const engine = await this.#engine;
    const modules: Record<string, string> = {};
    const npmRoots = new Set<string>();
    const engineSeen = new Set<string>();
    const seen = new Set<string>();
    const queue: { path: string; from: string }[] = [{ path: file, from: "" }];
    while (queue.length > 0) {
      const { path, from } = queue.shift()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const real = await Deno.realPath(path).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        throw new ModuleImportError(`${from}: imports ${path}, which does not exist`);
      });
      if (engine.some((folder) => real.startsWith(folder)) || project.isEngine(path)) {
        engineSeen.add(project.name(path));
        continue;
      }
      const info = await this.#module(path);
      modules[project.name(path)] = info.hash;
      for (const ref of info.refs) {
        const next = project.resolve(ref, path, npmRoots);
        if (next !== null) queue.push({ path: next, from: project.name(path) });
      }
    }
    const npm: Record<string, string[]> = {};
    for (const key of project.npm.packages(npmRoots)) {
      (npm[packageName(key)] ??= []).push(packageVersion(key));
    }
    const identity: CodeIdentity = {
      modules: sorted(modules),
      npm: sorted(Object.fromEntries(Object.entries(npm).map(([n, v]) => [n, v.join(", ")]))),
    };
    return { identity, hash: hashJson(identity), engine: [...engineSeen].sort() };
  }

  /** A module's hash and references, from memory or the cache while its file is unchanged. */
  #module(path: string): Promise<CachedModule> {
    let info = this.#stats.get(path);
    if (!info) {
      info = this.#hashIfChanged(path);
      this.#stats.set(path, info);
    }
    return info;
  }

  async #hashIfChanged(path: string): Promise<CachedModule> {
    const stat = await Deno.stat(path);
    const stamp = { size: stat.size, mtimeMs: stat.mtime?.getTime() ?? 0, ino: stat.ino ?? 0 };
    let known = memory.get(path);
    if (!known) {
      // Read from the cache only when needed, and awaited at once: a read left running could
      // outlive the records it reads.
      this.#remembered ??= this.#cache?.moduleHashes() ?? Promise.resolve(new Map());
      known = (await this.#remembered).get(path);
    }
    if (
      known && known.format === MODULE_HASH_FORMAT && known.size === stamp.size &&
      known.mtimeMs === stamp.mtimeMs && known.ino === stamp.ino
    ) {
      memory.set(path, known);
      return known;
    }
    const entry: CachedModule = { ...stamp, format: MODULE_HASH_FORMAT, ...await hashModule(path) };
    this.#hashed++;
    memory.set(path, entry);
    this.#fresh.push([path, entry]);
    return entry;
  }

  #project(file: string): Promise<Project> {
    const root = projectRoot(file);
    let project = this.#projects.get(root);
    if (!project) {
      project = Project.open(root);
      this.#projects.set(root, project);
    }
    return project;
  }
}

/** Hashes one module file and reads its references. */
async function hashModule(path: string): Promise<{ hash: string; refs: ModuleReference[] }> {
  const ext = extname(path);
  if (ext === ".json") {
    const value = JSON.parse(await Deno.readTextFile(path));
    return { hash: createHash("sha256").update(canonicalJson(value)).digest("hex"), refs: [] };
  }
  if (!MODULE_EXTENSIONS.has(ext)) {
    // A data file the code names (new URL("./table.bin", import.meta.url)): its bytes.
    return { hash: createHash("sha256").update(await Deno.readFile(path)).digest("hex"), refs: [] };
  }
  const tokens = tokenize(await Deno.readTextFile(path), path);
  return { hash: tokenHash(tokens), refs: runtimeReferences(tokens, path) };
}

const MODULE_EXTENSIONS = new Set([".ts", ".tsx", ".mts", ".js", ".jsx", ".mjs"]);

/** A project: its root (the folder of its deno.json), import map and lock file. */
class Project {
  readonly root: string;
  readonly npm: NpmResolver;
  /** Where the import map's relative targets are resolved from. */
  readonly #base: string;

  private constructor(root: string, npm: NpmResolver) {
    this.root = root;
    this.npm = npm;
    this.#base = pathToFileURL(join(root, "/")).href;
  }

  static async open(root: string): Promise<Project> {
    const config = await readJsonOrNull(join(root, "deno.json")) ??
      await readJsonOrNull(join(root, "deno.jsonc")) ?? {};
    const lock = await readJsonOrNull(join(root, "deno.lock"));
    const imports = (config as { imports?: Record<string, string> }).imports ?? {};
    return new Project(root, new NpmResolver(imports, lock));
  }

  /** Whether `path` is in the project's own engine folders (`lib/dag`, …), a copy included. */
  isEngine(path: string): boolean {
    return ENGINE_FOLDERS.some((f) => path.startsWith(join(this.root, "lib", f, "/")));
  }

  /** A module's name in identities: its path relative to the project, with `/`. */
  name(path: string): string {
    const rel = relative(this.root, path);
    return rel.startsWith("..") ? path : rel.split(sep).join("/");
  }

  /**
   * The file a reference of `from` leads to (null for a package or a built-in: npm packages go
   * to `npmRoots`).
   */
  resolve(ref: ModuleReference, from: string, npmRoots: Set<string>): string | null {
    const base = pathToFileURL(from).href;
    if (ref.kind === "url") {
      const target = new URL(ref.specifier, base);
      return target.pathname.endsWith("/") ? null : fileURLToPath(target);
    }
    const kind = this.npm.classify(ref.specifier);
    if (kind === null) return fileURLToPath(new URL(ref.specifier, base));
    if ("module" in kind) return fileURLToPath(new URL(kind.module, this.#base));
    if ("npm" in kind) npmRoots.add(kind.npm);
    if ("other" in kind) npmRoots.add(kind.other);
    return null;
  }
}

/** The nearest folder at or above `file`'s holding a deno.json (or the file's own folder). */
function projectRoot(file: string): string {
  for (let dir = dirname(resolve(file));; dir = dirname(dir)) {
    for (const name of ["deno.json", "deno.jsonc"]) {
      try {
        Deno.statSync(join(dir, name));
        return dir;
      } catch (e) {
        // Not here: look one folder up.
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    if (dirname(dir) === dir) return dirname(resolve(file));
  }
}

async function readJsonOrNull(path: string): Promise<unknown> {
  if ((await statOrNull(path)) === null) return null;
  return JSON.parse(await Deno.readTextFile(path));
}

/** The engine's folders, as real paths ending in a separator. */
async function engineFolders(): Promise<string[]> {
  const lib = fileURLToPath(new URL("../", import.meta.url));
  return await Promise.all(
    ENGINE_FOLDERS.map(async (f) => join(await Deno.realPath(join(lib, f)), "/")),
  );
}

function sorted(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a < b ? -1 : 1));
}

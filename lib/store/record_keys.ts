/**
 * Every KV key of a cache, spelled once. lib/store/records.ts reads and writes them; the
 * journal mirrors the ones that can be rebuilt.
 *
 * @module
 */

/** Every KV key of a cache. */
export const KEYS = {
  format: ["format"] as Deno.KvKey,
  lease: ["lease"] as Deno.KvKey,
  schedule: ["schedule", "last"] as Deno.KvKey,
  schedules: ["schedule"] as Deno.KvKey,
  action: (task: string, item: string): Deno.KvKey => ["action", task, item],
  actions: (task?: string): Deno.KvKey => task === undefined ? ["action"] : ["action", task],
  superseded: (task: string, item: string, replacedBy: number): Deno.KvKey => [
    "superseded",
    task,
    item,
    replacedBy,
  ],
  supersededAll: (task?: string): Deno.KvKey =>
    task === undefined ? ["superseded"] : ["superseded", task],
  failure: (task: string, item: string): Deno.KvKey => ["failure", task, item],
  failures: (task?: string): Deno.KvKey => task === undefined ? ["failure"] : ["failure", task],
  taskComponents: (task: string, hash: string): Deno.KvKey => ["task-components", task, hash],
  /** A code identity by its hash (shared by every task whose code it is). */
  codeIdentity: (hash: string): Deno.KvKey => ["code-identity", hash],
  /** The remembered hash of a module by its absolute path. */
  moduleHash: (path: string): Deno.KvKey => ["module-hash", path],
  moduleHashes: ["module-hash"] as Deno.KvKey,
  /**
   * What a task's code (`scope`: its code hash) read from a declared file (see
   * lib/dag/file_inputs.ts), by what it read and the file's sha256.
   */
  fileKey: (scope: string, name: string, sha256: string): Deno.KvKey => [
    "file-key",
    scope,
    name,
    sha256,
  ],
  configSlice: (task: string, hash: string): Deno.KvKey => ["config-slice", task, hash],
  /** Store digests of the files (models, specs) a task used, by a hash of their identities. */
  files: (task: string, hash: string): Deno.KvKey => ["files", task, hash],
  allFiles: ["files"] as Deno.KvKey,
  run: (id: number): Deno.KvKey => ["run", id],
  runs: ["run"] as Deno.KvKey,
  lastRun: (task: string): Deno.KvKey => ["last-run", task],
  lastRuns: ["last-run"] as Deno.KvKey,
  fileDigest: (path: string): Deno.KvKey => ["file-digest", path],
  fileDigests: ["file-digest"] as Deno.KvKey,
  alias: (name: string): Deno.KvKey => ["alias", name],
  aliases: ["alias"] as Deno.KvKey,
  /** The facts of the run that built a published output (see lib/dag/run_facts.ts). */
  runFacts: (task: string, key: string): Deno.KvKey => ["run-facts", task, key],
} as const;

/**
 * Whether `key` lies under `prefix` (e.g. an action record under `KEYS.actions()`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(isUnder(KEYS.action("encode", "00017"), KEYS.actions()), true);
 * assert.equal(isUnder(KEYS.alias("md5:ab"), KEYS.actions()), false);
 * ```
 */
export function isUnder(key: Deno.KvKey, prefix: Deno.KvKey): boolean {
  return prefix.every((part, i) => key[i] === part);
}

/** Key prefixes whose entries the journal mirrors (what `verify --repair` rebuilds). */
export const JOURNALED_KEYS: ReadonlySet<string> = new Set(
  [
    KEYS.actions(),
    KEYS.supersededAll(),
    KEYS.taskComponents("", ""),
    KEYS.codeIdentity(""),
    KEYS.configSlice("", ""),
    KEYS.allFiles,
    KEYS.aliases,
    KEYS.runFacts("", ""),
  ].map((key) => String(key[0])),
);

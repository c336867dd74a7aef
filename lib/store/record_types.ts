/**
 * What the records of a cache hold, as values: action records and the key components they were
 * computed from, failures, runs, file digests and aliases. Where each lives is
 * lib/store/record_keys.ts; reading and writing them is lib/store/records.ts.
 *
 * @module
 */
import type { Json } from "./canonical.ts";

/** The components an action key was computed from; kept so staleness can be explained. */
export interface KeyComponents {
  /** Task version string. */
  version: string;
  /** Hash of the task's code identity (see {@link CodeIdentity}). */
  code: string;
  /** sha256 of the task's config slice (the slice itself is stored once per task). */
  config: string;
  /** Digests of exactly the inputs this item consumes (upstream outputs, files), by name. */
  inputs: Record<string, string>;
  /** sha256 of the item's own parameters (e.g. its URL and MD5), when it has any. */
  params?: string;
}

/** What one action produced. */
export interface Output {
  /** Stored objects by name. */
  objects: Record<string, string>;
  /** Small JSON metadata (well under the 64 KiB KV value limit). */
  meta: Json;
}

/**
 * One recorded action (a task applied to one item, or an aggregate task's single action).
 * The task-wide key components (version, source, config) are stored once per task as
 * {@link TaskComponents}; a record keeps only their hash, so scanning records stays cheap.
 */
export interface ActionRecord {
  /** The action key. */
  key: string;
  /** Hash of the task-wide key components ({@link TaskComponents}). */
  taskHash: string;
  /** Input digests by input name. */
  inputs: Record<string, string>;
  /** Hash of the item's parameters, when it has any. */
  params?: string;
  /** Output objects by name. */
  objects: Record<string, string>;
  /** Output metadata. */
  meta: Json;
  /** Digest of the output (objects and metadata): what downstream keys are made of. */
  digest: string;
  /** Id of the run that produced it. */
  run: number;
  /** Milliseconds the action took. */
  ms: number;
}

/** The task-wide key components, stored once per distinct combination. */
export interface TaskComponents {
  version: string;
  /** Hash of the task's code identity, itself stored once by this hash. */
  code: string;
  /** sha256 of the task's config slice. */
  config: string;
}

/**
 * The task-wide components of records written before code identity (release 0.1.0): the
 * task's source file stood for its code.
 */
export interface LegacyTaskComponents {
  version: string;
  /** sha256 of the task's source file. */
  source: string;
  config: string;
}

/**
 * The code that computes a task's results (see lib/dag/code_identity.ts): its modules' hashes by
 * path, and its npm packages' versions by name.
 */
export interface CodeIdentity {
  modules: Record<string, string>;
  npm: Record<string, string>;
}

/** A module's hash as remembered between runs, valid while its size, mtime and inode are. */
export interface ModuleHashRecord {
  size: number;
  mtimeMs: number;
  ino: number;
  /** The format of the hash (a change of normalization makes older hashes unusable). */
  format: number;
  hash: string;
  /** What the module loads at run time. */
  refs: { specifier: string; kind: "import" | "url" }[];
}

/** A failed item. */
export interface FailureRecord {
  /** The action key that failed. */
  key: string;
  reason: string;
  /** The error's name. */
  kind: string;
  attempts: number;
  /** Id of the run it failed in. */
  run: number;
  at: string;
}

/** One run of the pipeline. */
export interface RunRecord {
  id: number;
  started: string;
  finished?: string;
  status: "running" | "ok" | "failed" | "interrupted";
  targets: string[];
  pid: number;
  counts?: Record<string, { ran: number; cached: number; failed: number; total: number }>;
}

/** When a task last ran something. */
export interface LastRun {
  lastRun: string;
  run: number;
}

/** A local file's digest as last computed, valid while its size, mtime and inode are the same. */
export interface FileDigest {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

/** Who holds a cache's lease (see lib/store/lease.ts). */
export interface LeaseNote {
  pid: number;
  host: string;
  command: string;
  since: string;
}

/** An object known under another name (e.g. `md5:<hex>`). */
export interface AliasRecord {
  digest: string;
}

/** Key of the aggregate action of a task in the per-item maps. */
export const AGGREGATE_ITEM = "*";

/** Raised when a cache cannot be read by this version (written by a newer one, or damaged). */
export class RecordFormatError extends Error {
  override readonly name = "RecordFormatError";
  /** A bad invocation (exit code 2): nothing was done. */
  readonly exitCode = 2;
}

/** Raised when a batch of records could not be committed. */
export class RecordCommitError extends Error {
  override readonly name = "RecordCommitError";
}

/**
 * Declaring tasks: what a task reads, which config it depends on, its version, and either one
 * action over all its inputs (aggregate) or one action per item (fan-out). One concept, the
 * contract between a task and the engine, hence over 400 lines of declarations.
 *
 * @module
 */
import type { Json } from "../store/canonical.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { Output } from "../store/records.ts";
import type { RunFacts } from "./run_facts.ts";

export type { Json, Output, RunFacts };

/**
 * Logs a line on behalf of a task (shown above the progress lines, or as a JSON event).
 * `detail` (e.g. a third-party library's own error text) goes to the JSON event only.
 */
export type Log = (message: string, detail?: string) => void;

/**
 * Where a declared file's URL is really fetched from, and the headers the request carries: a
 * task's own way to reach a host (e.g. Google Drive links through the Drive API with a key,
 * which lib/net's `DriveApi` is). The engine only hands it on to the download.
 */
export interface UrlRoute {
  /** The URL to fetch instead of `url` (`url` itself when this route does not apply). */
  route(url: string): string;
  /** Headers the request to a routed URL needs, if any. */
  headersFor(url: string): Record<string, string> | undefined;
}

/** How declared files that are URLs are downloaded. */
export interface FileDownloadOptions {
  /** Abort and retry a download when no byte arrives for this long (default 60,000 ms). */
  stallMs?: number;
  /** Where URLs are fetched from and with which headers (default: the URL, no headers). */
  drive?: UrlRoute | null;
}

/**
 * A file a task reads whose bytes its results do not depend on as a whole: what they depend on
 * is read from it (e.g. a decoder's latent channels, for an encoder: a fine-tuned decoder with
 * the same interface changes no latent the encoder gives). That, not the file's sha256, joins
 * the key; it is remembered by the file's sha256.
 */
export interface FileDeclaration {
  /** The dot path of the config field that names the file. */
  field: string;
  keyOn: {
    /** What is read, for the key and for messages (`latent-channels`). */
    name: string;
    /** Reads it from the file at `path`; null when the file cannot tell. */
    read(path: string): Promise<Json | null>;
    /** What is keyed when the file cannot tell (e.g. what the config says); else its bytes. */
    otherwise?: Json;
  };
}

/** A file a task declared (see {@link TaskCommon.files}), brought into the store for a run. */
export interface StoredFile {
  /** sha256 of its bytes (its object in the store). */
  digest: string;
  size: number;
  /** Where the object lives, for readers that want a path. */
  path: string;
}

/** What every action is given. */
export interface TaskContext<C = unknown> {
  /** The config slice the task declared, as a partial config object (with what it `reads`). */
  config: C;
  /**
   * The config fields its key holds, as a partial config object: what an output may state
   * about the config it was made with (not where it was published, nor how it ran).
   */
  keyed: unknown;
  /** The content-addressed object store. */
  store: ObjectStore;
  /** The cache directory (for partial downloads and the like). */
  cacheDir: string;
  /** Aborted when the run is interrupted; long actions should stop at a safe point. */
  signal: AbortSignal;
  log: Log;
  /**
   * The files the task declared, by name, in the store (empty while planning: nothing runs).
   * Messages should name the file the user configured, not its copy in the store.
   */
  files: Record<string, StoredFile>;
  /** The run's `--limit` (first N items of every listing), when one was given. */
  limit?: number;
  /** The config file the run was started with, when it came from one. */
  configFile?: string;
}

/** The context of one per-item action. */
export interface ItemContext<C = unknown> extends TaskContext<C> {
  /** The action key of this item: stable for the same inputs, so it can name checkpoints. */
  key: string;
  /** Loads this action's last checkpoint, if a previous attempt left one. */
  loadCheckpoint(): Promise<Uint8Array | null>;
  /** Saves a checkpoint durably; it is dropped when the action's record is written. */
  saveCheckpoint(bytes: Uint8Array): Promise<void>;
  /**
   * Says how far this item's action is: at step `done` of at most `budget` (the progress
   * displays count steps for a task that says this); the first call says where it starts (0,
   * or where a checkpoint left it). Does nothing where no display listens.
   */
  steps(done: number, budget: number): void;
  /**
   * The stored object an earlier action recorded under another name (see
   * {@link ActionResult.aliases}), when that object is still in the store; null otherwise
   * (and always on a remote worker, which has no records).
   */
  lookupAlias(name: string): Promise<{ digest: string; size: number } | null>;
  /**
   * Records at once that the object with digest `digest` is also known as `name` — before the
   * object is put in the store, so a run killed between storing it and recording the action
   * still finds it (a lookup ignores an alias whose object is not there). The action still
   * names the alias in its {@link ActionResult.aliases}. A no-op on a remote worker.
   */
  announceAlias(name: string, digest: string): Promise<void>;
}

/** What an action returns: its output, and other names its objects can be found by. */
export interface ActionResult extends Output {
  /**
   * Names under which later actions find an output object (e.g. `md5:<hex>` → the digest of
   * an image), recorded with the action in the same commit, after the object is durable.
   * They are not part of the output's digest.
   */
  aliases?: Record<string, string>;
  /**
   * What dependants' keys name this output by, when `objects` and `meta` hold another
   * representation of it (default: the output itself). A task sets it when the same result can
   * be recorded in more than one form — bytes read where they lie rather than stored, pixels
   * recomputed rather than kept — so that the form, and where the bytes lie, rerun nothing
   * downstream. It must hold exactly what the dependants' results depend on.
   */
  identity?: Output;
}

/** One item to process: its id, the upstream outputs it consumes, and its own parameters. */
export interface Item {
  id: string;
  /** Upstream outputs by task name (or by any name an `items` function chose). */
  inputs: Record<string, Output>;
  /** Parameters of this item (e.g. the MD5 of the file it fetches); part of its key. */
  params?: Json;
  /** What the action needs that cannot change its result (e.g. where to fetch from). */
  extra?: Json;
}

/** One successful item of a per-item task, as its action record holds it. */
export interface ItemEntry {
  id: string;
  out: Output;
  /** The key of the action that made it (for provenance). */
  key: string;
  /** Milliseconds its recorded action took. */
  ms: number;
}

/**
 * The successful items of a per-item task in this run: read in id order (the order Deno KV
 * keeps them, by the UTF-8 bytes of the ids; see `compareIds`) or one at a time. Outputs are
 * read from the records as they are asked for, not held in memory, so a task that reads
 * millions of them streams them.
 */
export interface ItemOutputs extends AsyncIterable<ItemEntry> {
  /** How many items succeeded. */
  readonly size: number;
  /** Whether item `id` succeeded. */
  has(id: string): boolean;
  /** Item `id`'s output, key and duration; undefined when it did not succeed. */
  get(id: string): Promise<ItemEntry | undefined>;
}

/** What an aggregate task, an `items` enumerator or a `finish` check receives from upstream. */
export interface Upstream {
  /** Output of an aggregate upstream task. */
  aggregate(task: string): Output;
  /** Successful items of a per-item upstream task, streamed in id order. */
  items(task: string): ItemOutputs;
  /** Failed items of a per-item upstream task (and of every task before it). */
  failures(task: string): ReadonlyMap<string, { task: string; reason: string }>;
  /** Store digests of the files a task declared (e.g. its models), by name. */
  taskInputs(task: string): Record<string, string>;
}

/**
 * Marks an error as worth retrying (network hiccups, 5xx, stalls). The engine retries an
 * action whose error has `retryable: true` (this class, or any error with that property)
 * under the task's {@link RetryPolicy}.
 */
export class RetryableError extends Error {
  override readonly name: string = "RetryableError";
  readonly retryable = true;
  /** Minimum delay before the retry, e.g. a quota back-off. */
  readonly delayMs?: number;
  /** False for a "not now" refusal (a quota) that must not use up an attempt. */
  readonly countsAsAttempt: boolean;
  constructor(
    message: string,
    options?: { cause?: unknown; delayMs?: number; countsAsAttempt?: boolean },
  ) {
    super(message, { cause: options?.cause });
    this.delayMs = options?.delayMs;
    this.countsAsAttempt = options?.countsAsAttempt ?? true;
  }
}

/** Retry policy for retryable errors. */
export interface RetryPolicy {
  /** Total attempts including the first (default 4). */
  attempts: number;
  /** First back-off in ms, doubled each attempt with full jitter (default 500). */
  baseMs: number;
  /** Cap of one back-off in ms (default 30,000). */
  maxMs: number;
}

/** What every task declares. */
export interface TaskCommon<C> {
  name: string;
  /** Tasks whose outputs this task reads. */
  deps: string[];
  /**
   * Dot paths of the config fields the task depends on (`"optimize"`, `"model.decoder"`); a
   * path written `!path` leaves that part of a section out (`["model", "!model.threads"]`).
   */
  config: string[];
  /**
   * Config fields the task reads that cannot change its results, so they stay out of its key:
   * where a model lives (its content is keyed by digest), providers, thread counts.
   */
  reads?: string[];
  /**
   * Config fields that say which dataset a record belongs to (its kind and source): an item
   * whose record was written with other values there never ran for this dataset, and a plan
   * says so rather than how the other dataset's config differs (a cache shared by datasets).
   */
  scope?: string[];
  /** Bumped by hand when the task's semantics change. */
  version: string;
  /** `import.meta.url` of the task's file; its content is part of every key. */
  source: string;
  /** One line for `dag` and `--help`. */
  describe: string;
  /** Retry policy, given the task's config slice. */
  retry?: (config: C) => Partial<RetryPolicy>;
  /**
   * Files the task reads (models, a dataset spec, a labels list), by input name → the dot path
   * of the config field that names them (a `{ path }` or `{ url, sha256?, md5?, size? }`
   * source), or a {@link FileDeclaration}. Their content joins the key of every action of the
   * task; where they live does not. The engine resolves them for planning as for running: a
   * local file by its sha256 (remembered by path, size, mtime and inode), a URL by its pinned
   * sha256 or MD5, and an unpinned URL only by fetching it (a plan says its dependants may
   * rerun). For a run they are brought into the store and handed over as `ctx.files`.
   */
  files?: (config: C) => Record<string, string | FileDeclaration | undefined>;
  /** How the task's files are downloaded when they are URLs (stall time, a Drive API key). */
  download?: (config: C) => FileDownloadOptions;
  /**
   * Checks the config against the machine before anything runs, in a dry run too (e.g. that a
   * dataset folder exists). What it throws is a config error: exit code 2, nothing done.
   */
  check?: (config: C) => Promise<void>;
}

/** A task with one action over all its inputs. */
export interface AggregateTask<C = unknown> extends TaskCommon<C> {
  kind: "aggregate";
  /**
   * A cheap description of outside state the task reads (a folder listing, a local file's
   * digest), computed on every run and part of the key, so new data reruns the task.
   */
  fingerprint?: (ctx: TaskContext<C>) => Promise<Json>;
  /** Its context can look up aliases, so it can reuse objects an earlier run built. */
  run(
    ctx: TaskContext<C> & Pick<ItemContext<C>, "lookupAlias">,
    upstream: Upstream,
  ): Promise<ActionResult>;
  /**
   * Lays the output out where users read it (e.g. `out/`), after a run and after a cache hit
   * alike, so files outside the store always match the recorded output. `run` holds the facts
   * of the run that built the output (the same on every later cache hit; null when they were
   * not recorded).
   */
  publish?: (ctx: TaskContext<C>, output: Output, run: RunFacts | null) => Promise<void>;
}

/**
 * Hands ready items of one group (see {@link EachTask.group}) to a batched task and takes
 * their results. Items are named by the item or by its id.
 */
export interface ItemSource {
  /** The group every item of this source belongs to (`null` for a task without groups). */
  readonly group: Json;
  /** Waits for 1…max ready items of the group; resolves `[]` when no more will come. */
  next(max: number): Promise<Item[]>;
  /** Returns up to max items of the group that are ready now, without waiting. */
  poll(max: number): Item[];
  /** Records one item's result (its output, or the error it failed with). */
  done(item: Item | string, result: ActionResult | Error, options?: { ms?: number }): Promise<void>;
  /** Per-item context (key, checkpoints) of an item handed out by next/poll. */
  context(item: Item | string): ItemContext<unknown>;
}

/** A task applied to every item. */
export interface EachTask<C = unknown, S = unknown> extends TaskCommon<C> {
  kind: "each";
  /**
   * Lists the items when they do not simply follow the upstream per-item task one for one: an
   * array, or a stream (an async generator) so that millions of items are never all in memory;
   * ids in ascending order (see `compareIds`) let the engine read their records in one pass.
   * A task with this function waits for all its upstream tasks to finish first.
   */
  items?: (
    ctx: TaskContext<C>,
    upstream: Upstream,
  ) => Promise<ItemSpec[]> | AsyncIterable<ItemSpec>;
  /**
   * Runs once before the first item that is not cached (e.g. to open a model session from
   * `ctx.files`); `state` is handed to each action.
   */
  prepare?: (ctx: TaskContext<C>) => Promise<{ state: S }>;
  /** Concurrent actions (default: number of cores). */
  concurrency?: (config: C) => number;
  /** One item at a time. */
  run?: (ctx: ItemContext<C>, item: Item, state: S) => Promise<ActionResult>;
  /**
   * Many items per call (batched inference); results are still recorded per item. Called once
   * per group of items (see `group`), one group at a time, with a source that hands out only
   * that group's items.
   */
  runBatched?: (ctx: TaskContext<C>, source: ItemSource, state: S) => Promise<void>;
  /**
   * Sums the task up once its items are settled — in a run after the last item (before
   * `teardown`), in `run --dry-run` with the items that would run — through `ctx.log`, with the
   * same code in both, so a plan says what the run will say (e.g. which local copies would be
   * adopted and which images downloaded). `items` lists again every item of an `items()` task
   * (`null` when they cannot be listed yet, or for a task whose items flow from upstream);
   * `done` holds the outputs that exist (finished or cached); `state` is `prepare`'s, absent in
   * a plan. `status` and `explain` do not call it.
   */
  summarize?: (
    ctx: TaskContext<C> & Pick<ItemContext<C>, "lookupAlias">,
    result: {
      items: (() => AsyncIterable<Item>) | null;
      done: ItemOutputs;
      failed: ReadonlyMap<string, string>;
      dryRun: boolean;
      /** The upstream outputs (usable when `items` is not `null`). */
      upstream: Upstream;
    },
    state: S | undefined,
  ) => Promise<void>;
  /**
   * The group of an item for `runBatched`: items whose groups are equal (as JSON) can share a
   * batch, e.g. latents of one shape. Default: one group.
   */
  group?: (item: Item) => Json;
  /** Releases what `prepare` opened (worker threads, sessions), after the last item. */
  teardown?: (state: S) => Promise<void>;
  /**
   * How far an interrupted action got, read from the last checkpoint it saved, for `status`
   * and `explain` ("interrupted at step 30/60, resumes from its checkpoint").
   */
  checkpointProgress?: (checkpoint: Uint8Array, config: C) => { step: number; of: number };
  /**
   * Checks the whole set once every item is done (e.g. a count check); throwing fails the
   * task (exit code 1) while its finished items still flow on. `failed` holds the items that
   * failed in this task or in one before it, with their reasons.
   */
  finish?: (
    ctx: TaskContext<C>,
    result: { done: ItemOutputs; expected: string[]; failed: ReadonlyMap<string, string> },
  ) => Promise<void>;
}

/** An item as listed by an `items` function. */
export interface ItemSpec {
  id: string;
  inputs?: Record<string, Output>;
  params?: Json;
  extra?: Json;
}

/** Any task. */
// deno-lint-ignore no-explicit-any
export type Task<C = any> = AggregateTask<C> | EachTask<C, any>;

/**
 * Declares an aggregate task.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const count = aggregate({ name: "count", deps: ["optimize"], config: ["package"],
 *   version: "1", source: import.meta.url, describe: "count the optimized images",
 *   run: (_ctx, up) => Promise.resolve({ objects: {}, meta: up.items("optimize").size }) });
 * assert.equal(count.kind, "aggregate");
 * ```
 */
export function aggregate<C>(task: Omit<AggregateTask<C>, "kind">): AggregateTask<C> {
  return { kind: "aggregate", ...task };
}

/**
 * Declares a per-item task.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const double = each({ name: "double", deps: ["numbers"], config: [], version: "1",
 *   source: import.meta.url, describe: "double each number",
 *   run: (_ctx, item) =>
 *     Promise.resolve({ objects: {}, meta: 2 * Number(item.inputs.numbers.meta) }) });
 * assert.equal(double.kind, "each");
 * ```
 */
export function each<C, S = undefined>(task: Omit<EachTask<C, S>, "kind">): EachTask<C, S> {
  return { kind: "each", ...task };
}

/** A pipeline: its tasks, its config schema and where its default config lives. */
export interface Pipeline<C = unknown> {
  name: string;
  version: string;
  tasks: Task<C>[];
  /** Validates a parsed config (zod schema's `safeParse` shape). */
  schema: {
    safeParse(
      value: unknown,
    ): { success: true; data: C } | { success: false; error: { issues: ConfigIssue[] } };
  };
  defaultConfig: string;
  /** Targets used when `run` is given none. */
  defaultTargets: string[];
  /**
   * The module whose `worker` command runs a shard on another machine (a `file:` URL, e.g. the
   * pipeline's `import.meta.url`). Default: the module that started the process.
   */
  entry?: string;
}

/** One config validation problem (zod's issue shape). */
export interface ConfigIssue {
  path: PropertyKey[];
  message: string;
  code?: string;
  expected?: unknown;
  input?: unknown;
  keys?: string[];
}

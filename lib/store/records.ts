/**
 * The records half of the store: Deno KV (embedded SQLite) holding action records, failures,
 * run history, config slices, the index of objects by other names (an image's MD5), the digest
 * cache of local files, the lease and the schedule. This module spells every KV key; nothing
 * else does. Writes are batched (≤ 500 mutations per commit) and reads are prefix scans, never
 * one `get` per item on a hot path.
 *
 * A cache written by an earlier latentforge (record format 1: one-letter fields under `act`,
 * `old`, `fail`, …) is migrated when it is opened, in batches that each move a set of records
 * atomically, so a migration killed half-way resumes on the next open.
 *
 * @module
 */
import { join } from "node:path";
import type { Json } from "./canonical.ts";
import { sleep } from "../base/sleep.ts";
import { Journal } from "./journal.ts";
import { KEYS } from "./record_keys.ts";
import { checkRecordsFile, RECORDS_FILE, recordsFault } from "./records_file.ts";

/** The record layout this code reads and writes. */
export const RECORD_FORMAT = 2;

/** The components an action key was computed from; kept so staleness can be explained. */
export interface KeyComponents {
  /** Task version string. */
  version: string;
  /** sha256 of the task's source file. */
  source: string;
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
  /** sha256 of the task's source file. */
  source: string;
  /** sha256 of the task's config slice. */
  config: string;
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

/** An object known under another name (e.g. `md5:<hex>`). */
export interface AliasRecord {
  digest: string;
}

/** Key of the aggregate action of a task in the per-item maps. */
export const AGGREGATE_ITEM = "*";

export { KEYS } from "./record_keys.ts";

/** Raised when a cache cannot be read by this version (written by a newer one, or damaged). */
export class RecordFormatError extends Error {
  override readonly name = "RecordFormatError";
}

/** Raised when a batch of records could not be committed. */
export class RecordCommitError extends Error {
  override readonly name = "RecordCommitError";
}

/**
 * Opens the KV database of a cache directory, migrating records an earlier version wrote.
 *
 * @example
 * ```ts
 * const records = await openRecords("cache");
 * const done = await records.actions("optimize");
 * records.close();
 * ```
 */
export async function openRecords(cacheDir: string): Promise<Records> {
  await Deno.mkdir(cacheDir, { recursive: true });
  await checkRecordsFile(cacheDir);
  // Two processes creating a fresh database at the same moment may find it locked briefly.
  for (let attempt = 1;; attempt++) {
    try {
      const records = new Records(await Deno.openKv(join(cacheDir, RECORDS_FILE)), cacheDir);
      await records.upgrade();
      await records.journal.start(records.kv);
      return records;
    } catch (e) {
      if (!/database is locked/.test(String(e)) || attempt >= 20) {
        throw recordsFault(e, cacheDir) ?? e;
      }
      await sleep(50 * attempt);
    }
  }
}

/** Typed access to the KV records. */
export class Records {
  readonly kv: Deno.Kv;
  readonly cacheDir: string;
  /** Where batches are mirrored so the database can be rebuilt. */
  readonly journal: Journal;

  constructor(kv: Deno.Kv, cacheDir: string) {
    this.kv = kv;
    this.cacheDir = cacheDir;
    this.journal = new Journal(cacheDir);
  }

  /** All current action records of a task, by item id. */
  async actions(task: string): Promise<Map<string, ActionRecord>> {
    const out = new Map<string, ActionRecord>();
    for await (
      const e of this.kv.list<ActionRecord>({ prefix: KEYS.actions(task) }, { batchSize: 1000 })
    ) {
      out.set(e.key[2] as string, e.value);
    }
    return out;
  }

  /** Superseded action records of a task by item id (for cache hits after a revert, and gc). */
  async superseded(task: string): Promise<Map<string, ActionRecord[]>> {
    const out = new Map<string, ActionRecord[]>();
    for await (
      const e of this.kv.list<ActionRecord>(
        { prefix: KEYS.supersededAll(task) },
        { batchSize: 1000 },
      )
    ) {
      const id = e.key[2] as string;
      const list = out.get(id) ?? [];
      list.push(e.value);
      out.set(id, list);
    }
    return out;
  }

  /** Every action record of every task, current and superseded (for gc and verify). */
  async *allActions(): AsyncGenerator<
    { key: Deno.KvKey; record: ActionRecord; current: boolean; replacedBy?: number }
  > {
    for await (
      const e of this.kv.list<ActionRecord>({ prefix: KEYS.actions() }, { batchSize: 1000 })
    ) {
      yield { key: e.key, record: e.value, current: true };
    }
    for await (
      const e of this.kv.list<ActionRecord>({ prefix: KEYS.supersededAll() }, { batchSize: 1000 })
    ) {
      yield { key: e.key, record: e.value, current: false, replacedBy: e.key[3] as number };
    }
  }

  /** All failure records of a task, by item id. */
  async failures(task: string): Promise<Map<string, FailureRecord>> {
    const out = new Map<string, FailureRecord>();
    for await (
      const e of this.kv.list<FailureRecord>({ prefix: KEYS.failures(task) }, { batchSize: 1000 })
    ) {
      out.set(e.key[2] as string, e.value);
    }
    return out;
  }

  /** Task-wide key components by their hash. */
  async taskComponents(task: string, hash: string): Promise<TaskComponents | null> {
    return (await this.kv.get<TaskComponents>(KEYS.taskComponents(task, hash))).value;
  }

  /** A stored config slice by hash. */
  async configSlice(task: string, hash: string): Promise<Record<string, Json> | null> {
    return (await this.kv.get<Record<string, Json>>(KEYS.configSlice(task, hash))).value;
  }

  /** Store digests of every file (model, spec) any task recorded using (gc keeps them). */
  async fileDigests(): Promise<Set<string>> {
    const out = new Set<string>();
    for await (const e of this.kv.list<Record<string, string>>({ prefix: KEYS.allFiles })) {
      for (const d of Object.values(e.value)) out.add(d);
    }
    return out;
  }

  /** Run history, newest first. */
  async runs(): Promise<RunRecord[]> {
    const out: RunRecord[] = [];
    for await (const e of this.kv.list<RunRecord>({ prefix: KEYS.runs }, { reverse: true })) {
      out.push(e.value);
    }
    return out;
  }

  /** Saves a run record. */
  async putRun(run: RunRecord): Promise<void> {
    await this.kv.set(KEYS.run(run.id), run);
  }

  /** When each task last ran something, by task. */
  async lastRuns(): Promise<Map<string, LastRun>> {
    const out = new Map<string, LastRun>();
    for await (const e of this.kv.list<LastRun>({ prefix: KEYS.lastRuns })) {
      out.set(e.key[1] as string, e.value);
    }
    return out;
  }

  /** The remembered digest of a local file, or null. */
  async fileDigest(path: string): Promise<FileDigest | null> {
    return (await this.kv.get<FileDigest>(KEYS.fileDigest(path))).value;
  }

  /** Remembers a local file's digest for its current size, mtime and inode. */
  async putFileDigest(path: string, digest: FileDigest): Promise<void> {
    await this.kv.set(KEYS.fileDigest(path), digest);
  }

  /** Every alias (e.g. `md5:<hex>`) and the object digest it names. */
  async aliases(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for await (
      const e of this.kv.list<AliasRecord>({ prefix: KEYS.aliases }, { batchSize: 1000 })
    ) {
      out.set(e.key[1] as string, e.value.digest);
    }
    return out;
  }

  /** Records aliases (name → object digest) in one commit; their objects must be durable. */
  async putAliases(aliases: [string, string][]): Promise<void> {
    await this.journal.append(
      aliases.map(([name, digest]) => ({ key: KEYS.alias(name), value: { digest } })),
    );
    for (let i = 0; i < aliases.length; i += MAX_MUTATIONS) {
      const op = this.kv.atomic();
      for (const [name, digest] of aliases.slice(i, i + MAX_MUTATIONS)) {
        op.set(KEYS.alias(name), { digest } satisfies AliasRecord);
      }
      const res = await op.commit();
      if (!res.ok) throw new RecordCommitError("recording a batch of aliases failed");
    }
  }

  /** Deletes the aliases whose object `gone` says is gone; returns how many. */
  async dropAliases(gone: (digest: string) => boolean): Promise<number> {
    const keys: Deno.KvKey[] = [];
    for await (
      const e of this.kv.list<AliasRecord>({ prefix: KEYS.aliases }, { batchSize: 1000 })
    ) {
      if (gone(e.value.digest)) keys.push(e.key);
    }
    await this.deleteKeys(keys);
    return keys.length;
  }

  /** Deletes keys in batches. */
  async deleteKeys(keys: Deno.KvKey[]): Promise<void> {
    await this.journal.append(keys.map((key) => ({ key })));
    for (let i = 0; i < keys.length; i += MAX_MUTATIONS) {
      const op = this.kv.atomic();
      for (const key of keys.slice(i, i + MAX_MUTATIONS)) op.delete(key);
      const res = await op.commit();
      if (!res.ok) throw new RecordCommitError("deleting a batch of records failed");
    }
  }

  /** A batch writer for this database. */
  writer(
    beforeCommit?: () => Promise<void>,
    onError?: (error: unknown) => void,
  ): RecordWriter {
    return new RecordWriter(this.kv, beforeCommit, this.journal, onError);
  }

  /**
   * Brings the records to {@link RECORD_FORMAT}: a fresh cache is marked, a format-1 cache is
   * migrated, a newer one is refused.
   */
  async upgrade(): Promise<void> {
    const format = (await this.kv.get<{ version: number }>(KEYS.format)).value;
    if (format?.version === RECORD_FORMAT) return;
    if (format && format.version > RECORD_FORMAT) {
      throw new RecordFormatError(
        `the cache ${this.cacheDir} was written by a newer latentforge (record format ` +
          `${format.version}); this one reads format ${RECORD_FORMAT}: upgrade latentforge, or ` +
          `use another --cache`,
      );
    }
    await migrateFormat1(this.kv, this.cacheDir);
    await this.kv.set(KEYS.format, { version: RECORD_FORMAT });
  }

  close(): void {
    this.kv.close();
  }
}

type Mutation = { key: Deno.KvKey; value?: unknown };

const MAX_MUTATIONS = 500;
const MAX_BYTES = 600_000;

/**
 * Buffers KV mutations and commits them in atomic batches. `beforeCommit` runs first so the
 * objects a record points to are durable before the record is.
 */
export class RecordWriter {
  readonly #kv: Deno.Kv;
  readonly #beforeCommit?: () => Promise<void>;
  readonly #journal?: Journal;
  #pending: Mutation[] = [];
  #bytes = 0;
  #flushing: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The first commit that failed: later commits are not tried, and `flush()` throws it. */
  #failed: unknown;
  readonly #onError?: (error: unknown) => void;

  constructor(
    kv: Deno.Kv,
    beforeCommit?: () => Promise<void>,
    journal?: Journal,
    onError?: (error: unknown) => void,
  ) {
    this.#kv = kv;
    this.#beforeCommit = beforeCommit;
    this.#journal = journal;
    this.#onError = onError;
  }

  /** Queues a set. */
  set(key: Deno.KvKey, value: unknown): void {
    this.#push({ key, value });
  }

  /** Queues a delete. */
  delete(key: Deno.KvKey): void {
    this.#push({ key });
  }

  /** Commits everything queued so far; throws the error of a commit that failed (ever). */
  async flush(): Promise<void> {
    this.#schedule();
    await this.#flushing;
    if (this.#failed !== undefined) throw this.#failed;
  }

  /**
   * Starts committing what is queued, after the commits before it. A failure (a full disk) is
   * kept and handed to `onError` instead of escaping as an unhandled rejection.
   */
  #schedule(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#pending;
    this.#pending = [];
    this.#bytes = 0;
    this.#flushing = this.#flushing.then(async () => {
      if (this.#failed !== undefined) return;
      try {
        await this.#commit(batch);
      } catch (e) {
        this.#failed = e;
        this.#onError?.(e);
      }
    });
  }

  #push(m: Mutation): void {
    const size = JSON.stringify(m.key).length +
      (m.value === undefined ? 0 : JSON.stringify(m.value).length);
    if (this.#pending.length >= MAX_MUTATIONS || this.#bytes + size > MAX_BYTES) this.#schedule();
    this.#pending.push(m);
    this.#bytes += size;
    // Records reach disk within 200 ms even when few items finish, so a kill loses little.
    if (this.#timer === undefined) this.#timer = setTimeout(() => this.#schedule(), 200);
  }

  async #commit(batch: Mutation[]): Promise<void> {
    if (batch.length === 0) return;
    if (this.#beforeCommit) await this.#beforeCommit();
    // A delete reaches the journal first, so a rebuild never brings back what was removed; new
    // records are journaled beside the commit (a batch the journal misses only reruns).
    const deletes = batch.some((m) => m.value === undefined);
    const journaled = deletes ? undefined : this.#journal?.append(batch);
    if (deletes) await this.#journal?.append(batch);
    const op = this.#kv.atomic();
    for (const m of batch) {
      if (m.value === undefined) op.delete(m.key);
      else op.set(m.key, m.value);
    }
    const [res] = await Promise.all([op.commit(), journaled]);
    if (!res.ok) throw new RecordCommitError("committing a batch of records failed");
  }
}

// ---- format 1 → 2 ----

/** Records as format 1 spelled them. */
interface ActionRecordV1 {
  k: string;
  x: string;
  i: Record<string, string>;
  q?: string;
  o: Record<string, string>;
  m: Json;
  d: string;
  r: number;
  ms: number;
}

function actionFromV1(v: ActionRecordV1): ActionRecord {
  const rec: ActionRecord = {
    key: v.k,
    taskHash: v.x,
    inputs: v.i,
    objects: v.o,
    meta: v.m,
    digest: v.d,
    run: v.r,
    ms: v.ms,
  };
  if (v.q !== undefined) rec.params = v.q;
  return rec;
}

/** How each format-1 key prefix moves: its new key and value. */
const V1_MOVES: Record<string, (key: Deno.KvKey, value: unknown) => [Deno.KvKey, unknown]> = {
  act: ([, task, id], v) => [
    KEYS.action(task as string, id as string),
    actionFromV1(v as ActionRecordV1),
  ],
  old: ([, task, id, run], v) => [
    KEYS.superseded(task as string, id as string, run as number),
    actionFromV1(v as ActionRecordV1),
  ],
  fail: ([, task, id], v) => {
    const f = v as { k: string; reason: string; kind: string; attempts: number; r: number };
    const at = (v as { at: string }).at;
    return [
      KEYS.failure(task as string, id as string),
      {
        key: f.k,
        reason: f.reason,
        kind: f.kind,
        attempts: f.attempts,
        run: f.r,
        at,
      } satisfies FailureRecord,
    ];
  },
  prefix: ([, task, hash], v) => {
    const p = v as { v: string; s: string; c: string };
    return [
      KEYS.taskComponents(task as string, hash as string),
      { version: p.v, source: p.s, config: p.c } satisfies TaskComponents,
    ];
  },
  cfg: ([, task, hash], v) => [KEYS.configSlice(task as string, hash as string), v],
  prep: ([, task, hash], v) => [KEYS.files(task as string, hash as string), v],
  task: ([, task], v) => [KEYS.lastRun(task as string), v],
};

/**
 * Moves format-1 records to their format-2 keys and names. Each batch checks that the old
 * entries are unchanged, sets the new ones and deletes the old ones in one commit, so two
 * processes opening the cache at once, or a kill mid-way, leave every record in exactly one
 * place. The MD5 index format 1 kept in files under `md5/` becomes aliases.
 */
async function migrateFormat1(kv: Deno.Kv, cacheDir: string): Promise<void> {
  for (const [prefix, move] of Object.entries(V1_MOVES)) {
    while (true) {
      const batch: Deno.KvEntry<unknown>[] = [];
      for await (const e of kv.list({ prefix: [prefix] }, { limit: 300 })) batch.push(e);
      if (batch.length === 0) break;
      const op = kv.atomic();
      for (const e of batch) {
        const [key, value] = move(e.key, e.value);
        op.check(e).set(key, value).delete(e.key);
      }
      // A failed check means another process moved these first: list again.
      await op.commit();
    }
  }
  await importMd5Files(kv, cacheDir);
}

async function importMd5Files(kv: Deno.Kv, cacheDir: string): Promise<void> {
  const root = join(cacheDir, "md5");
  let shards: Deno.DirEntry[];
  try {
    shards = await Array.fromAsync(Deno.readDir(root));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  const objects = join(cacheDir, "objects");
  for (const shard of shards) {
    if (!shard.isDirectory) continue;
    const dir = join(root, shard.name);
    const entries = await Array.fromAsync(Deno.readDir(dir));
    let op = kv.atomic();
    let n = 0;
    for (const entry of entries) {
      if (!/^[0-9a-f]{32}$/.test(entry.name)) continue;
      let digest: unknown;
      try {
        digest = JSON.parse(await Deno.readTextFile(join(dir, entry.name))).digest;
      } catch {
        // A file the old version left half-written names nothing: the image is fetched again.
        continue;
      }
      if (typeof digest !== "string" || !/^[0-9a-f]{64}$/.test(digest)) continue;
      const present = await Deno.stat(join(objects, digest.slice(0, 2), digest)).then(
        () => true,
        () => false,
      );
      if (!present) continue;
      op.set(KEYS.alias(`md5:${entry.name}`), { digest } satisfies AliasRecord);
      if (++n % MAX_MUTATIONS === 0) {
        await op.commit();
        op = kv.atomic();
      }
    }
    await op.commit();
  }
  // Every alias is in KV now; the files were latentforge's own.
  await Deno.remove(root, { recursive: true });
}

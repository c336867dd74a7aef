/**
 * The records half of the store: Deno KV (embedded SQLite) holding action records, failures,
 * run history, config slices, the index of objects by other names (an image's MD5), the digest
 * cache of local files, the lease and the schedule. Every key is spelled in record_keys.ts, every
 * value in record_types.ts; this module reads and writes them. Writes are batched (see
 * record_writer.ts) and reads are prefix scans, never one `get` per item on a hot path. A cache
 * an earlier latentforge wrote is brought to the current format when it is opened
 * (records_upgrade.ts).
 *
 * @module
 */
import { join } from "node:path";
import type { Json } from "./canonical.ts";
import { sleep } from "../base/sleep.ts";
import { entriesOf, Journal } from "./journal.ts";
import { KEYS } from "./record_keys.ts";
import { RecordCursor } from "./record_cursor.ts";
import { checkRecordsFile, RECORDS_FILE, recordsFault } from "./records_file.ts";
import { MAX_MUTATIONS, RecordWriter } from "./record_writer.ts";
import { RECORD_FORMAT, upgradeRecords } from "./records_upgrade.ts";
import {
  type ActionRecord,
  type AliasRecord,
  type CodeIdentity,
  type FailureRecord,
  type FileDigest,
  type LastRun,
  type LeaseNote,
  type LegacyTaskComponents,
  type ModuleHashRecord,
  RecordCommitError,
  type RunRecord,
  type TaskComponents,
} from "./record_types.ts";

// What the records hold and how they are written, for the modules that open them here.
export * from "./record_types.ts";
export { KEYS, RECORD_FORMAT, RecordWriter };

/**
 * Opens the KV database of a cache directory, migrating records an earlier version wrote.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const cache = await Deno.makeTempDir();
 * const records = await openRecords(cache);
 * assert.equal((await records.actions("optimize")).size, 0);
 * records.close();
 * await Deno.remove(cache, { recursive: true });
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
      await records.startJournal();
      return records;
    } catch (e) {
      if (!/database is locked/.test(String(e)) || attempt >= 20) {
        throw recordsFault(e, cacheDir) ?? e;
      }
      await sleep(50 * attempt);
    }
  }
}

/** Typed access to the KV records: the one holder of the database handle and its keys. */
export class Records {
  readonly #kv: Deno.Kv;
  readonly cacheDir: string;
  /** Where batches are mirrored so the database can be rebuilt. */
  readonly journal: Journal;

  constructor(kv: Deno.Kv, cacheDir: string) {
    this.#kv = kv;
    this.cacheDir = cacheDir;
    this.journal = new Journal(cacheDir);
  }

  /** Starts the journal (after {@link upgrade}). */
  async startJournal(): Promise<void> {
    await this.journal.start(this.#kv);
  }

  /** Replaces the journal by one snapshot of the live records; returns the files replaced. */
  async compactJournal(): Promise<number> {
    return (await this.journal.compact(entriesOf(this.#kv))).files;
  }

  /**
   * A cursor over the current action records of a task, read beside items asked in id order
   * (`adapt` turns each record read into the one answered, e.g. adopting an old one).
   */
  actionCursor(
    task: string,
    adapt?: (id: string, rec: ActionRecord) => ActionRecord | Promise<ActionRecord>,
  ): RecordCursor<ActionRecord, ActionRecord> {
    return new RecordCursor({ kv: this.#kv, prefix: KEYS.actions(task), adapt });
  }

  /** A cursor over the superseded action records of a task, all of an item's at once. */
  supersededCursor(task: string): RecordCursor<ActionRecord, ActionRecord[]> {
    return new RecordCursor({ kv: this.#kv, prefix: KEYS.supersededAll(task), grouped: true });
  }

  /** A cursor over the failure records of a task. */
  failureCursor(task: string): RecordCursor<FailureRecord, FailureRecord> {
    return new RecordCursor({ kv: this.#kv, prefix: KEYS.failures(task) });
  }

  /** The current action records of a task in id order, as they are stored. */
  async *actionsInOrder(task: string): AsyncGenerator<[string, ActionRecord]> {
    for await (
      const e of this.#kv.list<ActionRecord>({ prefix: KEYS.actions(task) }, { batchSize: 1000 })
    ) {
      yield [e.key[2] as string, e.value];
    }
  }

  /** The current action record of item `id` of a task, if any. */
  async action(task: string, id: string): Promise<ActionRecord | null> {
    return (await this.#kv.get<ActionRecord>(KEYS.action(task, id))).value;
  }

  /** All current action records of a task, by item id. */
  async actions(task: string): Promise<Map<string, ActionRecord>> {
    const out = new Map<string, ActionRecord>();
    for await (
      const e of this.#kv.list<ActionRecord>({ prefix: KEYS.actions(task) }, { batchSize: 1000 })
    ) {
      out.set(e.key[2] as string, e.value);
    }
    return out;
  }

  /** Superseded action records of a task by item id (for cache hits after a revert, and gc). */
  async superseded(task: string): Promise<Map<string, ActionRecord[]>> {
    const out = new Map<string, ActionRecord[]>();
    for await (
      const e of this.#kv.list<ActionRecord>(
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
      const e of this.#kv.list<ActionRecord>({ prefix: KEYS.actions() }, { batchSize: 1000 })
    ) {
      yield { key: e.key, record: e.value, current: true };
    }
    for await (
      const e of this.#kv.list<ActionRecord>({ prefix: KEYS.supersededAll() }, { batchSize: 1000 })
    ) {
      yield { key: e.key, record: e.value, current: false, replacedBy: e.key[3] as number };
    }
  }

  /** All failure records of a task, by item id. */
  async failures(task: string): Promise<Map<string, FailureRecord>> {
    const out = new Map<string, FailureRecord>();
    for await (
      const e of this.#kv.list<FailureRecord>({ prefix: KEYS.failures(task) }, { batchSize: 1000 })
    ) {
      out.set(e.key[2] as string, e.value);
    }
    return out;
  }

  /** Task-wide key components by their hash (those of a record older than code identity too). */
  async taskComponents(
    task: string,
    hash: string,
  ): Promise<TaskComponents | LegacyTaskComponents | null> {
    return (await this.#kv.get<TaskComponents>(KEYS.taskComponents(task, hash))).value;
  }

  /** A code identity by its hash, or null. */
  async codeIdentity(hash: string): Promise<CodeIdentity | null> {
    return (await this.#kv.get<CodeIdentity>(KEYS.codeIdentity(hash))).value;
  }

  /** Every remembered module hash, by absolute path. */
  async moduleHashes(): Promise<Map<string, ModuleHashRecord>> {
    const out = new Map<string, ModuleHashRecord>();
    for await (
      const e of this.#kv.list<ModuleHashRecord>({ prefix: KEYS.moduleHashes }, { batchSize: 1000 })
    ) {
      out.set(e.key[1] as string, e.value);
    }
    return out;
  }

  /**
   * Remembers module hashes. They are derived from the files, so they are not journaled, and a
   * write refused by a full disk only costs hashing again next time.
   */
  async putModuleHashes(entries: [string, ModuleHashRecord][]): Promise<void> {
    for (let i = 0; i < entries.length; i += MAX_MUTATIONS) {
      const op = this.#kv.atomic();
      for (const [path, entry] of entries.slice(i, i + MAX_MUTATIONS)) {
        op.set(KEYS.moduleHash(path), entry);
      }
      const res = await op.commit();
      if (!res.ok) throw new RecordCommitError("remembering a batch of module hashes failed");
    }
  }

  /** What a task's code read from a declared file (see lib/dag/file_inputs.ts), or null. */
  async fileKey(scope: string, name: string, sha256: string): Promise<{ value: Json } | null> {
    return (await this.#kv.get<{ value: Json }>(KEYS.fileKey(scope, name, sha256))).value;
  }

  /** Remembers what a task's code read from a declared file (derived: not journaled). */
  async putFileKey(scope: string, name: string, sha256: string, value: Json): Promise<void> {
    await this.#kv.set(KEYS.fileKey(scope, name, sha256), { value });
  }

  /** A stored config slice by hash. */
  async configSlice(task: string, hash: string): Promise<Record<string, Json> | null> {
    return (await this.#kv.get<Record<string, Json>>(KEYS.configSlice(task, hash))).value;
  }

  /** Store digests of every file (model, spec) any task recorded using (gc keeps them). */
  async fileDigests(): Promise<Set<string>> {
    const out = new Set<string>();
    for await (const e of this.#kv.list<Record<string, string>>({ prefix: KEYS.allFiles })) {
      for (const d of Object.values(e.value)) out.add(d);
    }
    return out;
  }

  /** Run history, newest first. */
  async runs(): Promise<RunRecord[]> {
    const out: RunRecord[] = [];
    for await (const e of this.#kv.list<RunRecord>({ prefix: KEYS.runs }, { reverse: true })) {
      out.push(e.value);
    }
    return out;
  }

  /** Saves a run record. */
  async putRun(run: RunRecord): Promise<void> {
    await this.#kv.set(KEYS.run(run.id), run);
  }

  /**
   * Saves a finished run's record and, in the same commit, notes when each task of `ran`
   * (those that ran or failed something) last ran.
   */
  async finishRun(run: RunRecord & { finished: string }, ran: string[]): Promise<void> {
    const atomic = this.#kv.atomic().set(KEYS.run(run.id), run);
    for (const task of ran) {
      atomic.set(KEYS.lastRun(task), { lastRun: run.finished, run: run.id } satisfies LastRun);
    }
    const res = await atomic.commit();
    if (!res.ok) throw new RecordCommitError(`recording the end of run ${run.id} failed`);
  }

  /** The facts kept beside the action `key` of `task` (see lib/dag/run_facts.ts), or null. */
  async runFacts<T>(task: string, key: string): Promise<T | null> {
    return (await this.#kv.get<T>(KEYS.runFacts(task, key))).value;
  }

  /** Notes who holds the lease (see lease.ts). */
  async putLeaseNote(note: LeaseNote): Promise<void> {
    await this.#kv.set(KEYS.lease, note);
  }

  /** Drops the lease note when `mine` says it is this holder's (and it did not change since). */
  async dropLeaseNote(mine: (note: LeaseNote) => boolean): Promise<void> {
    const now = await this.#kv.get<LeaseNote>(KEYS.lease);
    if (now.value && mine(now.value)) {
      await this.#kv.atomic().check(now).delete(KEYS.lease).commit();
    }
  }

  /** When each task last ran something, by task. */
  async lastRuns(): Promise<Map<string, LastRun>> {
    const out = new Map<string, LastRun>();
    for await (const e of this.#kv.list<LastRun>({ prefix: KEYS.lastRuns })) {
      out.set(e.key[1] as string, e.value);
    }
    return out;
  }

  /** The remembered digest of a local file, or null. */
  async fileDigest(path: string): Promise<FileDigest | null> {
    return (await this.#kv.get<FileDigest>(KEYS.fileDigest(path))).value;
  }

  /** Remembers a local file's digest for its current size, mtime and inode. */
  async putFileDigest(path: string, digest: FileDigest): Promise<void> {
    await this.#kv.set(KEYS.fileDigest(path), digest);
  }

  /** Every alias (e.g. `md5:<hex>`) and the object digest it names. */
  async aliases(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for await (
      const e of this.#kv.list<AliasRecord>({ prefix: KEYS.aliases }, { batchSize: 1000 })
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
      const op = this.#kv.atomic();
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
      const e of this.#kv.list<AliasRecord>({ prefix: KEYS.aliases }, { batchSize: 1000 })
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
      const op = this.#kv.atomic();
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
    return new RecordWriter(this.#kv, beforeCommit, this.journal, onError);
  }

  /**
   * Brings the records to {@link RECORD_FORMAT}: a fresh cache is marked, a format-1 cache is
   * migrated, a newer one is refused.
   */
  async upgrade(): Promise<void> {
    await upgradeRecords(this.#kv, this.cacheDir);
  }

  close(): void {
    this.#kv.close();
  }
}

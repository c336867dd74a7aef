/**
 * The records half of the store: Deno KV (embedded SQLite) holding action records, failures,
 * run history, config slices and the schedule. Writes are batched (≤ 500 mutations per commit)
 * and reads are prefix scans, never one `get` per item on a hot path.
 *
 * @module
 */
import { join } from "node:path";
import type { Json } from "./canonical.ts";
import { Journal } from "./journal.ts";
import { checkRecordsFile, RECORDS_FILE, recordsFault } from "./records_file.ts";

/** The components an action key was computed from; kept so staleness can be explained. */
export interface KeyComponents {
  /** Task version string. */
  v: string;
  /** sha256 of the task's source file. */
  s: string;
  /** sha256 of the task's config slice (the slice itself is stored once under `cfg`). */
  c: string;
  /** Digests of exactly the inputs this item consumes, by input name. */
  i: Record<string, string>;
  /** sha256 of the item's own parameters (e.g. its URL and MD5), when it has any. */
  p?: string;
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
 * The task-wide key components (version, source, config) are stored once per task under
 * `["prefix", task, x]`; a record keeps only their hash, so scanning records stays cheap.
 */
export interface ActionRecord {
  /** The action key. */
  k: string;
  /** Hash of the task-wide components ({@link PrefixParts}). */
  x: string;
  /** Input digests by input name. */
  i: Record<string, string>;
  /** Hash of the item's parameters, when it has any. */
  q?: string;
  /** Output objects. */
  o: Record<string, string>;
  /** Output metadata. */
  m: Json;
  /** Digest of the output (objects and metadata). */
  d: string;
  /** Run id that produced it. */
  r: number;
  /** Milliseconds the action took. */
  ms: number;
}

/** The task-wide key components. */
export interface PrefixParts {
  v: string;
  s: string;
  c: string;
}

/** A failed item. */
export interface FailureRecord {
  k: string;
  reason: string;
  kind: string;
  attempts: number;
  r: number;
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

/** Key of the aggregate action of a task in the per-item maps. */
export const AGGREGATE_ITEM = "*";

/** Opens the KV database of a cache directory. */
export async function openRecords(cacheDir: string): Promise<Records> {
  await Deno.mkdir(cacheDir, { recursive: true });
  await checkRecordsFile(cacheDir);
  // Two processes creating a fresh database at the same moment may find it locked briefly.
  for (let attempt = 1;; attempt++) {
    try {
      const kv = await Deno.openKv(join(cacheDir, RECORDS_FILE));
      return new Records(kv, new Journal(cacheDir));
    } catch (e) {
      if (!/database is locked/.test(String(e)) || attempt >= 20) {
        throw recordsFault(e, cacheDir) ?? e;
      }
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

/** Typed access to the KV records. */
export class Records {
  readonly kv: Deno.Kv;
  /** Where batches are mirrored so the database can be rebuilt (none: not mirrored). */
  readonly journal?: Journal;
  constructor(kv: Deno.Kv, journal?: Journal) {
    this.kv = kv;
    this.journal = journal;
  }

  /** All current action records of a task, by item id. */
  async actions(task: string): Promise<Map<string, ActionRecord>> {
    const out = new Map<string, ActionRecord>();
    for await (
      const e of this.kv.list<ActionRecord>({ prefix: ["act", task] }, { batchSize: 1000 })
    ) {
      out.set(e.key[2] as string, e.value);
    }
    return out;
  }

  /** Superseded action records of a task by item id (for cache hits after a revert, and gc). */
  async superseded(task: string): Promise<Map<string, ActionRecord[]>> {
    const out = new Map<string, ActionRecord[]>();
    for await (
      const e of this.kv.list<ActionRecord>({ prefix: ["old", task] }, { batchSize: 1000 })
    ) {
      const id = e.key[2] as string;
      const list = out.get(id) ?? [];
      list.push(e.value);
      out.set(id, list);
    }
    return out;
  }

  /** All failure records of a task, by item id. */
  async failures(task: string): Promise<Map<string, FailureRecord>> {
    const out = new Map<string, FailureRecord>();
    for await (
      const e of this.kv.list<FailureRecord>({ prefix: ["fail", task] }, { batchSize: 1000 })
    ) {
      out.set(e.key[2] as string, e.value);
    }
    return out;
  }

  /** Task-wide key components by their hash. */
  async prefixParts(task: string, hash: string): Promise<PrefixParts | null> {
    return (await this.kv.get<PrefixParts>(["prefix", task, hash])).value;
  }

  /** A stored config slice by hash. */
  async configSlice(task: string, hash: string): Promise<Record<string, Json> | null> {
    return (await this.kv.get<Record<string, Json>>(["cfg", task, hash])).value;
  }

  /** Run history, newest first. */
  async runs(): Promise<RunRecord[]> {
    const out: RunRecord[] = [];
    for await (const e of this.kv.list<RunRecord>({ prefix: ["run"] }, { reverse: true })) {
      out.push(e.value);
    }
    return out;
  }

  /** Saves a run record. */
  async putRun(run: RunRecord): Promise<void> {
    await this.kv.set(["run", run.id], run);
  }

  /** A batch writer for this database. */
  writer(beforeCommit?: () => Promise<void>): RecordWriter {
    return new RecordWriter(this.kv, beforeCommit, this.journal);
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

  constructor(kv: Deno.Kv, beforeCommit?: () => Promise<void>, journal?: Journal) {
    this.#kv = kv;
    this.#beforeCommit = beforeCommit;
    this.#journal = journal;
  }

  /** Queues a set. */
  set(key: Deno.KvKey, value: unknown): void {
    this.#push({ key, value });
  }

  /** Queues a delete. */
  delete(key: Deno.KvKey): void {
    this.#push({ key });
  }

  /** Commits everything queued so far. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batch = this.#pending;
    this.#pending = [];
    this.#bytes = 0;
    this.#flushing = this.#flushing.then(() => this.#commit(batch));
    return this.#flushing;
  }

  #push(m: Mutation): void {
    const size = JSON.stringify(m.key).length +
      (m.value === undefined ? 0 : JSON.stringify(m.value).length);
    if (this.#pending.length >= MAX_MUTATIONS || this.#bytes + size > MAX_BYTES) this.flush();
    this.#pending.push(m);
    this.#bytes += size;
    // Records reach disk within 200 ms even when few items finish, so a kill loses little.
    if (this.#timer === undefined) this.#timer = setTimeout(() => this.flush(), 200);
  }

  async #commit(batch: Mutation[]): Promise<void> {
    if (batch.length === 0) return;
    if (this.#beforeCommit) await this.#beforeCommit();
    await this.#journal?.append(batch);
    const op = this.#kv.atomic();
    for (const m of batch) {
      if (m.value === undefined) op.delete(m.key);
      else op.set(m.key, m.value);
    }
    const res = await op.commit();
    if (!res.ok) throw new Error("KV batch commit failed");
  }
}

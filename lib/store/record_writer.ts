/**
 * Writing records in batches: mutations are buffered and committed atomically, at most 500 per
 * commit and about 600 KB of keys and values (within Deno KV's limits on one commit), within
 * 200 ms of being queued so a kill loses little. A batch's objects are made durable first
 * (`beforeCommit`), so a record never names an object a power cut could take back.
 *
 * @module
 */
import type { Journal } from "./journal.ts";
import { RecordCommitError } from "./record_types.ts";

/** Mutations in one KV commit (Deno KV allows 1,000). */
export const MAX_MUTATIONS = 500;

type Mutation = { key: Deno.KvKey; value?: unknown };

const MAX_BYTES = 600_000;
/** Batches that may wait for their commit before writers are asked to wait (see `room`). */
const QUEUED_BATCHES = 4;

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
  /** Batches scheduled and not committed yet. */
  #queued = 0;
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

  /**
   * Undefined while few batches wait to be committed; else resolves once they are. Whoever
   * writes records as fast as it computes them awaits this, so batches never pile up in memory
   * when the disk is slower than the actions.
   */
  room(): Promise<void> | undefined {
    return this.#queued > QUEUED_BATCHES ? this.#flushing : undefined;
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
    this.#queued++;
    this.#flushing = this.#flushing.then(async () => {
      this.#queued--;
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

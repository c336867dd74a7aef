/**
 * The work pool of one per-item task: runs queued actions within the task's concurrency, or
 * feeds a batched task through an {@link ItemSource}. Used by the runner and by remote workers.
 *
 * @module
 */
import type {
  EachTask,
  Item,
  ItemContext,
  ItemSource,
  Output,
  RetryPolicy,
  TaskContext,
} from "./task.ts";
import { join } from "node:path";
import { writeFileAtomic } from "../store/objects.ts";
import type { KeyComponents } from "../store/records.ts";

/** One action to execute: the item, its key and the components of the key. */
export interface Work {
  item: Item;
  key: string;
  comps: KeyComponents;
  attempts: number;
  /** Set once the action saved a checkpoint, so finishing it removes the checkpoint. */
  checkpointed?: boolean;
}

/** What a pool needs from whoever records its results. */
export interface PoolHost {
  readonly signal: AbortSignal;
  /** Concurrency override for every per-item task. */
  readonly concurrency?: number;
  readonly ctx: TaskContext<unknown>;
  runItem(work: Work, state: unknown): Promise<void>;
  record(work: Work, out: Output, ms: number): Promise<void>;
  recordFailure(work: Work, e: unknown, ms: number): void;
  itemContext(work: Work): ItemContext<unknown>;
  retryPolicy(): RetryPolicy;
}

/** Runs the queued actions of one per-item task with its concurrency limit or its batch loop. */
export class WorkPool {
  readonly host: PoolHost;
  readonly task: EachTask;
  readonly limit: number;
  state: unknown;
  unimplemented?: string;
  unimplementedHit = false;
  /**
   * Set when a batch loop itself failed (a model that cannot run, a broken machine): the task
   * fails once with it, and the items it held or would get stay unrecorded, to run next time.
   */
  failure?: unknown;
  readonly #queue: Work[] = [];
  #head = 0;
  #active = 0;
  #closed = false;
  #waiters: (() => void)[] = [];
  #drained: Promise<void>;
  #resolveDrained!: () => void;
  #batchLoop?: Promise<void>;
  readonly #handed = new Map<Item, Work>();

  constructor(host: PoolHost, task: EachTask) {
    this.host = host;
    this.task = task;
    const wanted = host.concurrency ?? task.concurrency?.(host.ctx.config) ??
      navigator.hardwareConcurrency;
    this.limit = Math.max(1, wanted);
    this.#drained = new Promise((resolve) => this.#resolveDrained = resolve);
  }

  add(work: Work): void {
    if (this.failure !== undefined) return;
    if (this.unimplemented) {
      this.unimplementedHit = true;
      return;
    }
    this.#queue.push(work);
    if (this.task.runBatched) {
      this.#startBatchLoop();
      this.#wake();
    } else {
      this.#pump();
    }
  }

  close(): void {
    this.#closed = true;
    this.#wake();
    this.#check();
  }

  drained(): Promise<void> {
    this.#check();
    return this.#drained;
  }

  get #pending(): number {
    return this.#queue.length - this.#head;
  }

  #take(): Work | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const w = this.#queue[this.#head];
    this.#queue[this.#head++] = undefined as unknown as Work;
    if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    return w;
  }

  #pump(): void {
    const signal = this.host.signal;
    while (this.#active < this.limit && this.#pending > 0 && !signal.aborted) {
      const work = this.#take()!;
      this.#active++;
      this.host.runItem(work, this.state).finally(() => {
        this.#active--;
        this.#pump();
        this.#check();
      });
    }
    this.#check();
  }

  #check(): void {
    const stopped = this.host.signal.aborted;
    if (
      this.#closed && this.#active === 0 && (this.#pending === 0 || stopped) && !this.#batchLoop
    ) {
      this.#resolveDrained();
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #startBatchLoop(): void {
    if (this.#batchLoop) return;
    const source = this.#source();
    this.#batchLoop = this.task.runBatched!(this.host.ctx, source, this.state)
      .catch((e) => {
        if (this.host.signal.aborted && isAbort(e)) return;
        this.failure ??= e;
        this.#handed.clear();
        while (this.#take()) { /* dropped: they run again next time */ }
      })
      .finally(() => {
        this.#batchLoop = undefined;
        if (this.#pending > 0 && !this.host.signal.aborted && this.failure === undefined) {
          this.#startBatchLoop();
        }
        this.#check();
      });
  }

  #source(): ItemSource {
    const signal = this.host.signal;
    const takeUpTo = (max: number): Item[] => {
      const out: Item[] = [];
      if (signal.aborted) return out;
      while (out.length < max && this.#pending > 0) {
        const work = this.#take()!;
        this.#handed.set(work.item, work);
        out.push(work.item);
      }
      return out;
    };
    const started = new Map<Item, number>();
    return {
      poll: (max) => {
        const items = takeUpTo(max);
        for (const i of items) started.set(i, performance.now());
        return items;
      },
      next: async (max) => {
        while (true) {
          const items = takeUpTo(max);
          if (items.length > 0 || this.#closed || signal.aborted) {
            for (const i of items) started.set(i, performance.now());
            return items;
          }
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
      },
      context: (item) => {
        const work = this.#handed.get(item);
        if (!work) throw new Error(`item "${item.id}" was not handed out by this source`);
        return this.host.itemContext(work);
      },
      done: async (item, result, options) => {
        const work = this.#handed.get(item);
        if (!work) throw new Error(`item "${item.id}" was not handed out by this source`);
        this.#handed.delete(item);
        const ms = options?.ms ?? performance.now() - (started.get(item) ?? performance.now());
        started.delete(item);
        if (result instanceof Error) {
          if (signal.aborted && isAbort(result)) return;
          const policy = this.host.retryPolicy();
          work.attempts++;
          if ((result as { retryable?: boolean }).retryable && work.attempts < policy.attempts) {
            this.#queue.push(work);
            this.#wake();
            return;
          }
          this.host.recordFailure(work, result, ms);
        } else {
          await this.host.record(work, result, ms);
        }
      },
    };
  }
}

/** Whether an error is an interruption rather than a failure. */
export function isAbort(e: unknown): boolean {
  return e instanceof Error && (e.name === "AbortError" || e.name === "Interrupted");
}

/** The default retry policy for retryable errors. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseMs: 500, maxMs: 30_000 };

/** Where the checkpoint reference of an action lives. */
export function checkpointPath(cacheDir: string, task: string, key: string): string {
  return join(cacheDir, "checkpoints", task, key);
}

/** The context of one action: the task's context plus its key and checkpoints. */
export function itemContext(
  ctx: TaskContext<unknown>,
  task: string,
  work: Work,
): ItemContext<unknown> {
  const path = checkpointPath(ctx.cacheDir, task, work.key);
  const store = ctx.store;
  return {
    ...ctx,
    key: work.key,
    async loadCheckpoint() {
      let digest: string;
      try {
        digest = (await Deno.readTextFile(path)).trim();
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return null;
        throw e;
      }
      return await store.has(digest) ? await store.get(digest) : null;
    },
    async saveCheckpoint(bytes) {
      const previous = (await Deno.readTextFile(path).catch(() => "")).trim();
      const digest = await store.put(bytes);
      await store.syncDirs();
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      await writeFileAtomic(path, new TextEncoder().encode(digest));
      work.checkpointed = true;
      // Only this reference named the previous checkpoint; dropping it keeps the store small.
      if (previous && previous !== digest) await store.remove(previous);
    },
  };
}

/** Runs `fn`, retrying retryable errors with exponential back-off and full jitter. */
export async function withRetry<T>(
  policy: RetryPolicy,
  work: Work,
  fn: () => Promise<T>,
  signal: AbortSignal,
  onRetry: (attempt: number, delayMs: number, e: unknown) => void,
): Promise<T> {
  while (true) {
    work.attempts++;
    try {
      return await fn();
    } catch (e) {
      const retryable = (e as { retryable?: boolean })?.retryable === true;
      if (!retryable || work.attempts >= policy.attempts || signal.aborted) throw e;
      const backoff = Math.min(policy.maxMs, policy.baseMs * 2 ** (work.attempts - 1));
      const delayMs = Math.max((e as { delayMs?: number }).delayMs ?? 0, Math.random() * backoff);
      onRetry(work.attempts, delayMs, e);
      await sleep(delayMs, signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

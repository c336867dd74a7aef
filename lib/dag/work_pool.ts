/**
 * The work pool of one per-item task: runs queued actions within the task's concurrency, or
 * feeds a batched task through an {@link ItemSource}, one group of items at a time. Used by
 * the runner and by remote workers.
 *
 * @module
 */
import type { EachTask, Item, ItemSource } from "./task.ts";
import { canonicalJson } from "../store/canonical.ts";
import { sleep } from "../base/sleep.ts";
import { isAbort } from "../base/abort.ts";
import type { Pool, PoolHost, Work } from "./pool.ts";
import { isDamagedObject } from "./damage_repair.ts";

/** Runs the queued actions of one per-item task with its concurrency limit or its batch loop. */
export class WorkPool implements Pool {
  readonly host: PoolHost;
  readonly task: EachTask;
  readonly limit: number;
  fatal?: unknown;
  #state?: unknown;
  #preparing?: Promise<void>;
  /** Single actions: one queue. Batched tasks: one queue per group, by the group's JSON. */
  readonly #queues = new Map<string, WorkQueue>();
  #prepared = false;
  #active = 0;
  #closed = false;
  #waiters: (() => void)[] = [];
  #drained: Promise<void>;
  #resolveDrained!: () => void;
  #batchLoop?: Promise<void>;
  /** Retries waiting out their delay, and held actions, before they join a queue again. */
  #delayed = 0;
  readonly #handed = new Map<string, Work>();

  constructor(host: PoolHost, task: EachTask) {
    this.host = host;
    this.task = task;
    const wanted = host.concurrency ?? task.concurrency?.(host.ctx.config) ??
      navigator.hardwareConcurrency;
    this.limit = Math.max(1, wanted);
    this.#drained = new Promise((resolve) => this.#resolveDrained = resolve);
  }

  add(work: Work): void {
    if (this.fatal !== undefined) return;
    this.host.gate?.enter();
    this.#enqueue(work);
    if (!this.#prepare()) return;
    if (this.task.runBatched) {
      this.#startBatchLoop();
      this.#wake();
    } else {
      this.#pump();
    }
  }

  /** Prepares the task before its first action; true once it is prepared. */
  #prepare(): boolean {
    if (this.#preparing === undefined) {
      this.#preparing = this.host.prepared().then((state) => {
        this.#state = state;
        this.#prepared = true;
        if (this.task.runBatched) this.#startBatchLoop();
        else this.#pump();
        this.#wake();
      }, (e) => {
        // Nothing of this task can run: it fails once, its items are left for the next run.
        this.fatal = e;
        this.#drop();
        this.#wake();
        this.#check();
      });
    }
    return this.#prepared;
  }

  close(): void {
    this.#closed = true;
    this.#wake();
    this.#check();
  }

  hold(pending: Promise<unknown>): void {
    this.#delayed++;
    const back = () => {
      this.#delayed--;
      this.#wake();
      this.#check();
    };
    pending.then(back, back);
  }

  drained(): Promise<void> {
    this.#check();
    return this.#drained;
  }

  /** Empties the queues (the task cannot run): their actions are in flight no more. */
  #drop(): void {
    for (const q of this.#queues.values()) while (q.take()) this.host.gate?.leave();
    this.#queues.clear();
  }

  #enqueue(work: Work): void {
    const group = this.task.runBatched && this.task.group
      ? canonicalJson(this.task.group(work.item))
      : "";
    let queue = this.#queues.get(group);
    if (!queue) {
      queue = new WorkQueue(group);
      this.#queues.set(group, queue);
    }
    queue.push(work);
  }

  get #pending(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.size;
    return n;
  }

  #pump(): void {
    const signal = this.host.signal;
    const queue = this.#queues.get("");
    while (
      this.#prepared && this.#active < this.limit && queue && queue.size > 0 && !signal.aborted
    ) {
      const work = queue.take()!;
      this.#active++;
      this.host.runItem(work, this.#state).finally(() => {
        this.host.gate?.leave();
        this.#active--;
        this.#pump();
        this.#check();
      });
    }
    this.#check();
  }

  #check(): void {
    const stopped = this.host.signal.aborted;
    const preparing = this.#preparing !== undefined && !this.#prepared && this.fatal === undefined;
    if (
      this.#closed && this.#active === 0 && !preparing &&
      (this.#pending === 0 && this.#delayed === 0 || stopped) && !this.#batchLoop
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
    if (this.#batchLoop || !this.#prepared || this.host.signal.aborted) return;
    // One group at a time: the one with the most items ready.
    let queue: WorkQueue | undefined;
    for (const q of this.#queues.values()) {
      if (q.size > 0 && (!queue || q.size > queue.size)) queue = q;
    }
    if (!queue) return;
    const source = this.#source(queue);
    const failHanded = (e: unknown) => {
      for (const work of [...this.#handed.values()]) {
        if (work.group === queue.group) {
          this.#handed.delete(work.item.id);
          this.host.recordFailure(work, e, 0);
          this.host.gate?.leave();
        }
      }
    };
    this.#batchLoop = this.task.runBatched!(this.host.ctx, source, this.#state)
      .then(() => {
        // Items a loop stopped by an interruption did not answer for are unfinished, not
        // failed: the next run takes them up again (from their checkpoints).
        if (this.host.signal.aborted) return this.#handed.clear();
        // Items the loop took but never answered for cannot be left hanging.
        failHanded(
          new BatchLoopError(
            `task "${this.task.name}" ended its batch without a result for this item`,
          ),
        );
      }, (e) => {
        if (this.host.signal.aborted && isAbort(e)) return;
        if (isDamagedObject(e)) {
          // An item's input object was found damaged while the batch read it: that item is
          // rebuilt and comes back (see damage_repair.ts); the others wait in the queue again.
          for (const work of [...this.#handed.values()]) {
            if (work.group !== queue.group) continue;
            this.#handed.delete(work.item.id);
            if (readsObject(work, e.digest)) {
              this.host.recordFailure(work, e, 0);
              this.host.gate?.leave();
            } else queue.push(work);
          }
          return;
        }
        // The batch loop itself failed: the task's problem, told once, not once per item.
        this.fatal ??= e;
        for (const _ of this.#handed.values()) this.host.gate?.leave();
        this.#handed.clear();
        this.#drop();
      })
      .finally(() => {
        this.#batchLoop = undefined;
        if (this.fatal === undefined) this.#startBatchLoop();
        this.#check();
      });
  }

  #source(queue: WorkQueue): ItemSource {
    const signal = this.host.signal;
    const takeUpTo = (max: number): Item[] => {
      const out: Item[] = [];
      if (signal.aborted) return out;
      while (out.length < max && queue.size > 0) {
        const work = queue.take()!;
        work.group = queue.group;
        work.started = performance.now();
        this.#handed.set(work.item.id, work);
        out.push(work.item);
      }
      return out;
    };
    const handed = (item: Item | string): Work => {
      const id = typeof item === "string" ? item : item.id;
      const work = this.#handed.get(id);
      if (!work) throw new BatchLoopError(`item "${id}" was not handed out by this source`);
      return work;
    };
    // Another group waiting ends this group's turn once it has nothing ready.
    const othersWaiting = () => {
      for (const q of this.#queues.values()) if (q !== queue && q.size > 0) return true;
      return false;
    };
    return {
      group: queue.group === "" ? null : JSON.parse(queue.group),
      poll: (max) => takeUpTo(max),
      next: async (max) => {
        while (true) {
          const items = takeUpTo(max);
          if (items.length > 0 || signal.aborted) return items;
          if (this.#closed && this.#delayed === 0 || othersWaiting()) return items;
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
      },
      context: (item) => this.host.itemContext(handed(item)),
      done: async (item, result, options) => {
        const work = handed(item);
        this.#handed.delete(work.item.id);
        const ms = options?.ms ?? performance.now() - (work.started ?? performance.now());
        if (result instanceof Error) {
          if (signal.aborted && isAbort(result)) return this.host.gate?.leave();
          const delay = this.#retryDelay(work, result);
          if (delay === null) {
            this.host.recordFailure(work, result, ms);
            return this.host.gate?.leave();
          }
          this.host.onRetry(work, result, delay);
          this.#delayed++;
          // Woken by the delay or by an interruption alike: either way the wait is over.
          const back = () => {
            this.#delayed--;
            if (!signal.aborted) {
              queue.push(work);
              this.#startBatchLoop();
            }
            this.#wake();
            this.#check();
          };
          sleep(delay, signal).then(back, back);
        } else {
          try {
            await this.host.record(work, result, ms);
          } finally {
            this.host.gate?.leave();
          }
        }
      },
    };
  }

  /** The wait before retrying a batched item after `e`, or null when it fails for good. */
  #retryDelay(work: Work, e: Error): number | null {
    const policy = this.host.retryPolicy();
    if ((e as { retryable?: boolean }).retryable !== true) return null;
    work.attempts++;
    if ((e as { countsAsAttempt?: boolean }).countsAsAttempt !== false) {
      work.counted = (work.counted ?? 0) + 1;
    }
    if ((work.counted ?? 0) >= policy.attempts) return null;
    const cap = Math.min(policy.maxMs, policy.baseMs * 2 ** (work.attempts - 1));
    return Math.max((e as { delayMs?: number }).delayMs ?? 0, Math.random() * cap);
  }
}

/** Whether the action reads object `digest` (an object of one of its inputs). */
function readsObject(work: Work, digest: string): boolean {
  return Object.values(work.item.inputs).some((out) => Object.values(out.objects).includes(digest));
}

/** A first-in, first-out queue of actions that frees its head as it goes. */
class WorkQueue {
  readonly group: string;
  #items: (Work | undefined)[] = [];
  #head = 0;

  constructor(group: string) {
    this.group = group;
  }

  get size(): number {
    return this.#items.length - this.#head;
  }

  push(work: Work): void {
    this.#items.push(work);
  }

  take(): Work | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const w = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 4096 && this.#head * 2 > this.#items.length) {
      this.#items.splice(0, this.#head);
      this.#head = 0;
    }
    return w;
  }
}

/** Raised when a batched task mishandles the items it was given. */
export class BatchLoopError extends Error {
  override readonly name = "BatchLoopError";
}

/**
 * Damaged or missing objects, inside the run that finds them: an action whose input object is
 * gone (found missing before it runs) or corrupt (found by a read, which quarantines it) does
 * not fail. The item that made the object is run again — its record dropped, its action run in
 * a pool of its own once its task has finished — and the action is then decided again with
 * the rebuilt input and run. Exactly the actions built on a damaged object run again, in the
 * run that found it; one line says which. An object of an aggregate task's output cannot be
 * rebuilt under a task that read it: its record is dropped (the next run rebuilds it) and the
 * reader fails with the reason.
 *
 * @module
 */
import { ObjectStoreError } from "../store/objects.ts";
import { AGGREGATE_ITEM } from "../store/records.ts";
import type { Produced } from "./item_join.ts";
import type { Pool, Work } from "./pool.ts";
import type { RunContext, TaskView } from "./run_context.ts";
import type { Item } from "./task.ts";

/** An error that says an object of the store is corrupt or missing. */
export type DamagedObjectError = ObjectStoreError & { digest: string };

/**
 * Whether `e` says an object of the store is corrupt or missing (and which).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MissingObjectError } from "../store/objects.ts";
 *
 * assert.equal(isDamagedObject(new MissingObjectError("ab".repeat(32), "objects")), true);
 * assert.equal(isDamagedObject(new Error("no such file")), false);
 * ```
 */
export function isDamagedObject(e: unknown): e is DamagedObjectError {
  return e instanceof ObjectStoreError && typeof (e as { digest?: unknown }).digest === "string";
}

/** The item of an earlier task that made an object, and that task. */
export interface Producer {
  task: TaskView;
  id: string;
}

/**
 * The item of the tasks `names` (and what they read) whose output holds object `digest`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { RunContext, TaskView } from "./run_context.ts";
 *
 * async function* outputs() {
 *   yield { id: "7", out: { objects: { latent: "d1" }, meta: null }, key: "k", ms: 1 };
 * }
 * const encode = {
 *   task: { name: "encode", kind: "each", deps: [] },
 *   outputs,
 * } as unknown as TaskView;
 * const run = { driver: () => encode } as unknown as RunContext;
 * assert.equal((await producerOf(run, ["encode"], "d1"))?.id, "7");
 * assert.equal(await producerOf(run, ["encode"], "d2"), null);
 * ```
 */
export async function producerOf(
  run: RunContext,
  names: readonly string[],
  digest: string,
): Promise<Producer | null> {
  const seen = new Set<string>();
  const stack = [...names];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const task = run.driver(name);
    if (task.task.kind === "aggregate") {
      const p = task.outcome.aggregate;
      if (p && Object.values(p.out.objects).includes(digest)) return { task, id: AGGREGATE_ITEM };
    } else {
      // Read from the records: a damaged object is rare, and outputs are not kept in memory.
      for await (const { id, out } of task.outputs()) {
        if (Object.values(out.objects).includes(digest)) return { task, id };
      }
    }
    stack.push(...task.task.deps);
  }
  return null;
}

/** What the repair of a reader needs from its task. */
export interface ReaderHost {
  readonly name: string;
  readonly run: RunContext;
  readonly deps: readonly string[];
  /** Decides an item again with new inputs and queues it (not counted as a new item). */
  readmit(item: Item, pool: Pool): Promise<void>;
  /** Fails an item for good. */
  fail(work: Work, e: unknown): void;
}

/**
 * Repairs the inputs of the actions of one task: when one of them finds an input object
 * damaged, the item that made it is rebuilt and the action decided again.
 */
export class InputRepair {
  readonly #host: ReaderHost;

  constructor(host: ReaderHost) {
    this.#host = host;
  }

  /** The objects of `item`'s inputs that are not in the store (checked before it runs). */
  async missing(item: Item): Promise<string[]> {
    const out: string[] = [];
    const { store } = this.#host.run.options;
    for (const input of Object.values(item.inputs)) {
      for (const d of Object.values(input.objects)) if (!(await store.has(d))) out.push(d);
    }
    return out;
  }

  /**
   * Whether `e`, which `work` failed with, names one of its input objects as damaged: then
   * the repair is started (held by `pool` until the action is queued again) and true returned.
   */
  handle(work: Work, e: unknown, pool: Pool): boolean {
    if (!isDamagedObject(e) || !inputObjects(work.item).has(e.digest)) return false;
    pool.hold(this.repair(work, [e.digest], pool, e));
    return true;
  }

  /** Rebuilds the items that made `damaged` and queues `work`'s item again with their outputs. */
  async repair(work: Work, damaged: string[], pool: Pool, cause?: Error): Promise<void> {
    const host = this.#host;
    const item = { ...work.item, inputs: { ...work.item.inputs } };
    for (const digest of damaged) {
      const producer = await producerOf(host.run, host.deps, digest);
      const why = cause?.message ?? `object ${digest} is missing from the store`;
      if (producer === null) {
        return host.fail(work, new ObjectStoreError(`${why}; no task of this run made it`));
      }
      if (producer.task.task.kind === "aggregate") {
        producer.task.invalidate(producer.id);
        return host.fail(
          work,
          new ObjectStoreError(
            `${why}; it is an output of ${producer.task.task.name}, which the next run builds ` +
              `again`,
          ),
        );
      }
      host.run.options.reporter.emit({
        event: "log",
        task: host.name,
        message: `${why}: running again the actions built from them ` +
          `(${producer.task.task.name} ${producer.id}, then ${host.name} ${work.item.id})`,
      });
      const old = (await producer.task.outputs().get(producer.id))?.out;
      const rebuilt = await producer.task.rebuild(producer.id);
      // An interrupted run leaves the action unfinished, not failed.
      if (host.run.options.signal.aborted) return;
      if (rebuilt === null) {
        return host.fail(
          work,
          new ObjectStoreError(
            `${why}; running ${producer.task.task.name} ${producer.id} ` +
              `again failed: ${producer.task.outcome.failed.get(producer.id) ?? "interrupted"}`,
          ),
        );
      }
      for (const [name, out] of Object.entries(item.inputs)) {
        if (out === old || Object.values(out.objects).includes(digest)) {
          item.inputs[name] = rebuilt.out;
        }
      }
    }
    await host.readmit(item, pool);
  }
}

/** Every object of an item's inputs. */
function inputObjects(item: Item): Set<string> {
  const out = new Set<string>();
  for (const input of Object.values(item.inputs)) {
    for (const d of Object.values(input.objects)) out.add(d);
  }
  return out;
}

/** What the rebuild of a task's items needs from its task. */
export interface RebuildHost {
  /** Resolves once the task has ended (a rebuild waits for the task's own pool to be done). */
  finished(): Promise<void>;
  /**
   * Forgets the record of item `id` (its objects are damaged), and decides and queues it on
   * `pool` as a rebuild: its new output replaces the old one without flowing on again. Returns
   * the output at once when the decision found one (a revived record), null when the item
   * is no longer one of the task's, or undefined when it was queued.
   */
  queueRebuild(id: string, pool: Pool): Promise<Produced | null | undefined>;
  openPool(): Pool;
  /** Releases what the pool's actions prepared (sessions, workers). */
  release(): Promise<void>;
}

/** Runs items of one task again, within the run, in waves once the task has finished. */
export class ItemRebuild {
  readonly #host: RebuildHost;
  readonly #pending = new Map<string, PromiseWithResolvers<Produced | null>>();
  readonly #started = new Map<string, Promise<Produced | null>>();
  readonly #fresh = new Map<string, Produced>();
  #wave?: Promise<void>;

  constructor(host: RebuildHost) {
    this.#host = host;
  }

  /** Runs item `id` again; resolves with its new output (null when it could not be rebuilt). */
  rebuild(id: string): Promise<Produced | null> {
    let started = this.#started.get(id);
    if (started) return started;
    const waiting = Promise.withResolvers<Produced | null>();
    this.#pending.set(id, waiting);
    started = waiting.promise.finally(() => this.#started.delete(id));
    this.#started.set(id, started);
    this.#wave ??= this.#waves().finally(() => this.#wave = undefined);
    return started;
  }

  /** Whether item `id` is being rebuilt (its recorded output replaces the old one). */
  rebuilding(id: string): boolean {
    return this.#started.has(id);
  }

  /** The rebuilt item's new output, recorded. */
  recorded(id: string, p: Produced): void {
    this.#fresh.set(id, p);
  }

  async #waves(): Promise<void> {
    const host = this.#host;
    await host.finished();
    while (this.#pending.size > 0) {
      const wave = [...this.#pending];
      this.#pending.clear();
      const pool = host.openPool();
      try {
        for (const [id, waiting] of wave) {
          const now = await host.queueRebuild(id, pool);
          if (now !== undefined) waiting.resolve(now);
        }
        pool.close();
        await pool.drained();
      } finally {
        await host.release();
      }
      for (const [id, waiting] of wave) {
        waiting.resolve(this.#fresh.get(id) ?? null);
        this.#fresh.delete(id);
      }
    }
  }
}

/**
 * What one task of a run (or plan) has come to: its counts, the items it produced, failed,
 * planned or left unfinished, their keys, and how it ended. Only the transitions below change
 * it, each keeping the counts and the lists in step; everything else reads it through the
 * read-only {@link TaskOutcome}.
 *
 * @module
 */
import type { KeyComponents } from "../store/records.ts";
import type { TaskCounts, TaskStatus } from "./events.ts";
import type { KeyLookup, Produced } from "./item_join.ts";
import type { StaleReason } from "./staleness.ts";

/** What a plan says about an item that is not cached. */
export interface ItemPlan {
  verdict: "run" | "may";
  reasons: StaleReason[];
}

/** What a task has come to, read-only. */
export interface TaskOutcome {
  readonly name: string;
  readonly counts: Readonly<TaskCounts>;
  /** Items produced so far (cached, ran, or placeholders in a plan). */
  readonly done: ReadonlyMap<string, Produced>;
  /** Items that failed, with their reasons. */
  readonly failed: ReadonlyMap<string, string>;
  /** Action keys by item: this run's decisions, and a cached item's from its output. */
  readonly keys: KeyLookup;
  /** Current key components of the items that are not cached. */
  readonly components: ReadonlyMap<string, KeyComponents>;
  /** Items that are not cached, and why (a plan; a run records what it ran). */
  readonly plans: ReadonlyMap<string, ItemPlan>;
  /** Items listed or followed, in order. */
  readonly expected: readonly string[];
  /** Items whose action ran in this run (successfully or not). */
  readonly executed: readonly string[];
  /** Set when a plan cannot list the items (what they come from would run first). */
  readonly unlisted: string | undefined;
  /** Whether a plan has items that would run first: their outputs are not known yet. */
  readonly provisional: boolean;
  readonly status: TaskStatus;
  readonly reason: string | undefined;
  /** Resolves once the task has ended. */
  finished(): Promise<void>;
  /** Calls `listener` for every item produced so far and from now on. */
  subscribe(listener: (id: string, p: Produced) => void): void;
}

/**
 * The state of one task, changed only through its transitions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const state = new TaskState("square");
 * const seen: string[] = [];
 * state.subscribe((id) => seen.push(id));
 * state.listed("3");
 * state.cached("3", { out: { objects: {}, meta: 9 }, digest: "d", key: "k" });
 * state.listed("4");
 * state.failedItem("4", "no such number");
 * state.end("ok");
 * assert.deepEqual(state.counts, { total: 2, ran: 0, cached: 1, failed: 1, final: true });
 * assert.deepEqual(seen, ["3"]);
 * assert.equal(state.keys.get("3"), "k");
 * await state.finished();
 * ```
 */
export class TaskState implements TaskOutcome {
  readonly name: string;
  readonly #counts: TaskCounts = { total: 0, ran: 0, cached: 0, failed: 0, final: false };
  readonly #done = new Map<string, Produced>();
  readonly #failed = new Map<string, string>();
  readonly #keys = new Map<string, string>();
  readonly #components = new Map<string, KeyComponents>();
  readonly #plans = new Map<string, ItemPlan>();
  readonly #expected: string[] = [];
  readonly #executed: string[] = [];
  #unlisted?: string;
  #status: TaskStatus = "ok";
  #reason?: string;
  #ended = false;
  #listeners: ((id: string, p: Produced) => void)[] = [];
  readonly #finished: Promise<void>;
  #resolveFinished!: () => void;
  readonly keys: KeyLookup = {
    get: (id) => this.#keys.get(id) ?? this.#done.get(id)?.key,
    has: (id) => this.#keys.has(id) || this.#done.get(id)?.key !== undefined,
  };

  constructor(name: string) {
    this.name = name;
    this.#finished = new Promise((resolve) => this.#resolveFinished = resolve);
  }

  get counts(): Readonly<TaskCounts> {
    return this.#counts;
  }
  get done(): ReadonlyMap<string, Produced> {
    return this.#done;
  }
  get failed(): ReadonlyMap<string, string> {
    return this.#failed;
  }
  get components(): ReadonlyMap<string, KeyComponents> {
    return this.#components;
  }
  get plans(): ReadonlyMap<string, ItemPlan> {
    return this.#plans;
  }
  get expected(): readonly string[] {
    return this.#expected;
  }
  get executed(): readonly string[] {
    return this.#executed;
  }
  get unlisted(): string | undefined {
    return this.#unlisted;
  }
  get provisional(): boolean {
    return this.#plans.size > 0;
  }
  get status(): TaskStatus {
    return this.#status;
  }
  get reason(): string | undefined {
    return this.#reason;
  }
  get ended(): boolean {
    return this.#ended;
  }

  finished(): Promise<void> {
    return this.#finished;
  }

  subscribe(listener: (id: string, p: Produced) => void): void {
    for (const [id, p] of this.#done) listener(id, p);
    this.#listeners.push(listener);
  }

  // ---- transitions ----

  /** An item became known (listed, or arrived from upstream). */
  listed(id: string): void {
    this.#counts.total++;
    this.#expected.push(id);
  }

  /** Every item is known now: progress can show a total. */
  allListed(): void {
    this.#counts.final = true;
  }

  /** A plan cannot list the items, for this reason. */
  cannotList(why: string): void {
    this.#unlisted ??= why;
  }

  /** An item's output came from the cache. */
  cached(id: string, p: Produced): void {
    this.#counts.cached++;
    this.#produce(id, p);
  }

  /** An item is not cached: its components now, and its key when known. */
  stale(id: string, components: KeyComponents, key: string | undefined): void {
    this.#components.set(id, components);
    if (key !== undefined) this.#keys.set(id, key);
  }

  /** What a plan says about an item that is not cached; `placeholder` flows on in its place. */
  planned(id: string, plan: ItemPlan, placeholder: Produced): void {
    this.#plans.set(id, plan);
    this.#produce(id, placeholder);
  }

  /** An item's action ran and recorded `p`. */
  ran(id: string, p: Produced): void {
    this.#counts.ran++;
    this.#executed.push(id);
    this.#failed.delete(id);
    this.#produce(id, p);
  }

  /**
   * An item's output was rebuilt within this run, because objects of the old one were found
   * damaged (`ran`: its action ran again, else a record was revived); what read the old output
   * is told by whoever asked for the rebuild, not by the listeners.
   */
  rebuilt(id: string, p: Produced, ran: boolean): void {
    if (ran) {
      this.#counts.ran++;
      this.#executed.push(id);
    }
    this.#done.set(id, p);
  }

  /** A cached output turned out damaged (when publishing it): the item is decided again. */
  retracted(id: string): void {
    if (this.#done.delete(id)) this.#counts.cached--;
  }

  /** An item's action failed for good. */
  failedItem(id: string, reason: string): void {
    this.#counts.failed++;
    this.#executed.push(id);
    this.#failed.set(id, reason);
  }

  /**
   * The task ended; a second call changes nothing. Returns false when it had ended already.
   * Whoever awaits {@link finished} resumes after the caller's synchronous code (e.g. the
   * task-end event it emits).
   */
  end(status: TaskStatus, reason?: string): boolean {
    if (this.#ended) return false;
    this.#ended = true;
    this.#status = status;
    this.#reason = reason;
    this.#counts.final = true;
    this.#resolveFinished();
    return true;
  }

  #produce(id: string, p: Produced): void {
    this.#done.set(id, p);
    for (const l of this.#listeners) l(id, p);
  }
}

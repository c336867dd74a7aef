/**
 * What one task of a run (or plan) has come to: its counts, where each item stands (a byte per
 * item, item_table.ts), the items that failed and why, how many items each reason to run
 * covers, and how it ended. Outputs are not kept: they flow to the task's followers as they are
 * produced and are read back from the records afterwards. Per-item detail (keys, key
 * components, plans, the order items came in) is kept for the first {@link DETAIL_LIMIT} items
 * and for items asked about by name, so a small run can be inspected item by item and a large
 * one stays flat in memory. Only the transitions below change the state.
 *
 * @module
 */
import { AGGREGATE_ITEM, type KeyComponents } from "../store/records.ts";
import type { TaskCounts, TaskStatus } from "./events.ts";
import type { KeyLookup, Produced } from "./item_join.ts";
import { ItemState, ItemStates, ItemTable } from "./item_table.ts";
import { WholeHash } from "./whole_hash.ts";
import type { StaleReason } from "./staleness.ts";

/** Items of a task whose keys, components, plans and order are kept item by item. */
export const DETAIL_LIMIT = 1_000;

/** What a plan says about an item that is not cached. */
export interface ItemPlan {
  verdict: "run" | "may";
  reasons: StaleReason[];
}

/** The items a plan's reason covers: how many, and the first few of them. */
export interface PlanGroup {
  reason: StaleReason;
  verdict: "run" | "may";
  count: number;
  /** The first {@link GROUP_EXAMPLES} items, in the order they came. */
  items: string[];
}

/** Examples kept per reason. */
const GROUP_EXAMPLES = 20;

/**
 * Reasons counted one by one; past them, reasons of the same kind share a count (reasons that
 * name an item's own input digests differ for every item).
 */
const MAX_GROUPS = 200;

/** What a plan says about a task's items that are not cached, counted. */
export interface PlanTally {
  run: number;
  may: number;
  /** Items that failed before (a reason of theirs says so). */
  failed: number;
  /** Items an interrupted action left a checkpoint of. */
  interrupted: number;
  /** By verdict and reason, in the order reasons first came. */
  groups: PlanGroup[];
}

/** Which items a state keeps detail of, besides the first {@link DETAIL_LIMIT}. */
export interface DetailOptions {
  /** Items asked about by name (`explain TASK ITEM`). */
  watch?: ReadonlySet<string>;
  /** Items kept item by item (default {@link DETAIL_LIMIT}). */
  limit?: number;
}

/** What a task has come to, read-only. */
export interface TaskOutcome {
  readonly name: string;
  readonly counts: Readonly<TaskCounts>;
  /** Items with an output now (cached or ran; placeholders of a plan not included). */
  readonly okCount: number;
  /** Whether item `id` has an output now (cached or ran). */
  ok(id: string): boolean;
  /** The output of an aggregate task, once there is one (a placeholder in a plan). */
  readonly aggregate: Produced | undefined;
  /** Items that failed, with their reasons. */
  readonly failed: ReadonlyMap<string, string>;
  /** Action keys of the items kept in detail: this run's decisions, and cached items'. */
  readonly keys: KeyLookup;
  /** Current key components of the items kept in detail that are not cached. */
  readonly components: ReadonlyMap<string, KeyComponents>;
  /** Plans of the items kept in detail that are not cached (a run records what it ran). */
  readonly plans: ReadonlyMap<string, ItemPlan>;
  /** The plan's reasons, counted over every item. */
  readonly tally: PlanTally;
  /** Items kept in detail, in the order they were listed or followed. */
  readonly expected: readonly string[];
  /** Items kept in detail whose action ran in this run (successfully or not). */
  readonly executed: readonly string[];
  /** Every item the task was handed, in the order the run first saw them. */
  listedIds(): Generator<string>;
  /** Whether the task was handed item `id`. */
  knows(id: string): boolean;
  /** Set when a plan cannot list the items (what they come from would run first). */
  readonly unlisted: string | undefined;
  /** Whether a plan has items that would run first: their outputs are not known yet. */
  readonly provisional: boolean;
  /**
   * The digest of the outputs as a whole when no item failed, hashed as they came (see
   * {@link TaskState.hashWhole}); null when it could not be (read the records instead).
   */
  wholeDigest(): string | null;
  readonly status: TaskStatus;
  readonly reason: string | undefined;
  /** Resolves once the task has ended. */
  finished(): Promise<void>;
  /** Calls `listener` for every item produced from now on (subscribe before items flow). */
  subscribe(listener: (id: string, p: Produced) => void): void;
}

/**
 * The state of one task, changed only through its transitions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ItemTable } from "./item_table.ts";
 *
 * const state = new TaskState("square", new ItemTable());
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
 * assert.equal(state.ok("3"), true);
 * assert.equal(state.ok("4"), false);
 * await state.finished();
 * ```
 */
export class TaskState implements TaskOutcome {
  readonly name: string;
  readonly #counts: TaskCounts = { total: 0, ran: 0, cached: 0, failed: 0, final: false };
  readonly #states: ItemStates;
  #ok = 0;
  #planned = 0;
  #aggregate?: Produced;
  readonly #failed = new Map<string, string>();
  readonly #watch: ReadonlySet<string>;
  readonly #limit: number;
  readonly #detailed = new Set<string>();
  readonly #keys = new Map<string, string>();
  readonly #components = new Map<string, KeyComponents>();
  readonly #plans = new Map<string, ItemPlan>();
  readonly #tally: PlanTally = { run: 0, may: 0, failed: 0, interrupted: 0, groups: [] };
  readonly #groups = new Map<string, PlanGroup>();
  readonly #expected: string[] = [];
  readonly #executed: string[] = [];
  #unlisted?: string;
  #status: TaskStatus = "ok";
  #reason?: string;
  #ended = false;
  #listeners: ((id: string, p: Produced) => void)[] = [];
  #whole: WholeHash | null = null;
  readonly #finished: Promise<void>;
  #resolveFinished!: () => void;
  readonly keys: KeyLookup = {
    get: (id) => this.#keys.get(id),
    has: (id) => this.#keys.has(id),
  };

  constructor(name: string, table: ItemTable, detail: DetailOptions = {}) {
    this.name = name;
    this.#states = new ItemStates(table);
    this.#watch = detail.watch ?? new Set();
    this.#limit = detail.limit ?? DETAIL_LIMIT;
    this.#finished = new Promise((resolve) => this.#resolveFinished = resolve);
  }

  get counts(): Readonly<TaskCounts> {
    return this.#counts;
  }
  get okCount(): number {
    return this.#ok;
  }
  /** Whether the task was handed item `id`. */
  knows(id: string): boolean {
    return this.#states.get(id) !== ItemState.none;
  }
  ok(id: string): boolean {
    const s = this.#states.get(id);
    return s === ItemState.cached || s === ItemState.ran;
  }
  get aggregate(): Produced | undefined {
    return this.#aggregate;
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
  get tally(): PlanTally {
    return this.#tally;
  }
  get expected(): readonly string[] {
    return this.#expected;
  }
  get executed(): readonly string[] {
    return this.#executed;
  }
  listedIds(): Generator<string> {
    return this.#states.ids(() => true);
  }
  get unlisted(): string | undefined {
    return this.#unlisted;
  }
  get provisional(): boolean {
    return this.#planned > 0;
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

  /**
   * Hashes the outputs as a whole as they are produced, for a dependant that reads them so
   * (task_outputs.ts's `wholeDigest`, with no failures): possible while they come in ascending
   * id order, as cached items of a listing in order do; otherwise the records are read.
   */
  hashWhole(): void {
    this.#whole = new WholeHash([]);
  }

  wholeDigest(): string | null {
    const w = this.#whole;
    return w === null || w.count !== this.#ok || this.#failed.size > 0 ? null : w.digest();
  }

  subscribe(listener: (id: string, p: Produced) => void): void {
    this.#listeners.push(listener);
  }

  // ---- transitions ----

  /** An item became known (listed, or arrived from upstream). */
  listed(id: string): void {
    this.#counts.total++;
    this.#set(id, ItemState.listed);
    if (id === AGGREGATE_ITEM || this.#watch.has(id) || this.#detailed.size < this.#limit) {
      this.#detailed.add(id);
      this.#expected.push(id);
    }
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
    if (p.key !== undefined && this.#detailed.has(id)) this.#keys.set(id, p.key);
    this.#set(id, ItemState.cached);
    this.#produce(id, p);
  }

  /** An item is not cached: its components now, and its key when known. */
  stale(id: string, components: KeyComponents, key: string | undefined): void {
    if (!this.#detailed.has(id)) return;
    this.#components.set(id, components);
    if (key !== undefined) this.#keys.set(id, key);
  }

  /** What a plan says about an item that is not cached; `placeholder` flows on in its place. */
  planned(id: string, plan: ItemPlan, placeholder: Produced): void {
    if (this.#detailed.has(id)) this.#plans.set(id, plan);
    this.#count(id, plan);
    this.#planned++;
    this.#set(id, ItemState.planned);
    this.#produce(id, placeholder);
  }

  /** An item's action ran and recorded `p`. */
  ran(id: string, p: Produced): void {
    this.#counts.ran++;
    if (this.#detailed.has(id)) this.#executed.push(id);
    this.#failed.delete(id);
    this.#set(id, ItemState.ran);
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
      if (this.#detailed.has(id)) this.#executed.push(id);
    }
    if (id === AGGREGATE_ITEM) this.#aggregate = p;
    this.#whole = null;
    this.#set(id, ran ? ItemState.ran : ItemState.cached);
  }

  /** A cached output turned out damaged (when publishing it): the item is decided again. */
  retracted(id: string): void {
    if (!this.ok(id)) return;
    if (id === AGGREGATE_ITEM) this.#aggregate = undefined;
    this.#whole = null;
    this.#counts.cached--;
    this.#set(id, ItemState.listed);
  }

  /** An item's action failed for good. */
  failedItem(id: string, reason: string): void {
    this.#counts.failed++;
    if (this.#detailed.has(id)) this.#executed.push(id);
    this.#failed.set(id, reason);
    this.#set(id, ItemState.failed);
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

  #set(id: string, state: typeof ItemState[keyof typeof ItemState]): void {
    const was = this.#states.get(id);
    const ok = (s: number) => s === ItemState.cached || s === ItemState.ran;
    if (ok(was) !== ok(state)) this.#ok += ok(state) ? 1 : -1;
    this.#states.set(id, state);
  }

  #count(id: string, plan: ItemPlan): void {
    const t = this.#tally;
    t[plan.verdict]++;
    if (plan.reasons.some((r) => r.kind === "failed")) t.failed++;
    if (plan.reasons.some((r) => r.kind === "interrupted")) t.interrupted++;
    for (const given of plan.reasons) {
      let reason = given;
      let key = `${plan.verdict}\n${reason.text}`;
      if (!this.#groups.has(key) && this.#groups.size >= MAX_GROUPS) {
        reason = { kind: given.kind, text: `other reasons (${given.kind})` };
        key = `${plan.verdict}\n${reason.text}`;
      }
      let g = this.#groups.get(key);
      if (!g) {
        g = { reason, verdict: plan.verdict, count: 0, items: [] };
        this.#groups.set(key, g);
        t.groups.push(g);
      }
      g.count++;
      if (g.items.length < GROUP_EXAMPLES) g.items.push(id);
    }
  }

  #produce(id: string, p: Produced): void {
    if (id === AGGREGATE_ITEM) this.#aggregate = p;
    // Out of order, the whole digest is read from the records instead.
    if (this.#whole !== null && !this.#whole.add(id, p.digest)) this.#whole = null;
    for (const l of this.#listeners) l(id, p);
  }
}

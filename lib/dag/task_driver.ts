/**
 * Driving one task through a run or a plan: wait for what it reads, resolve its files, then
 * ask the decision for its single action (an aggregate task) or for each item (see
 * item_flow.ts); hand on cached outputs at once and run the rest (a plan hands on placeholders
 * and notes why instead).
 *
 * @module
 */
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { canonicalJson, sha256Hex } from "../store/canonical.ts";
import type { ObjectStore } from "../store/objects.ts";
import {
  type ActionRecord,
  AGGREGATE_ITEM,
  type KeyComponents,
  KEYS,
  type Output,
} from "../store/records.ts";
import { taskIdentity } from "./task_identity.ts";
import { ActionRunner } from "./action_runner.ts";
import { configSlice, projectConfig } from "./config.ts";
import { errorText, TaskContractError } from "./errors.ts";
import type { TaskCounts, TaskStatus } from "./events.ts";
import { fileInputDigests, planFiles, type PlannedFile, storeFiles } from "./file_inputs.ts";
import { driveItems } from "./item_flow.ts";
import { driveAggregate } from "./aggregate_flow.ts";
import type { KeyLookup, Produced } from "./item_join.ts";
import type { Pool } from "./pool.ts";
import type { RunContext } from "./run_context.ts";
import {
  ActionDecider,
  type Decision,
  isProvisional,
  pendingDigest,
  type StaleReason,
} from "./staleness.ts";
import type { Item, Json, StoredFile, Task, TaskContext } from "./task.ts";

/** What a plan says about an item that is not cached. */
export interface ItemPlan {
  verdict: "run" | "may";
  reasons: StaleReason[];
}

/** Drives one task. */
export class TaskDriver {
  readonly run: RunContext;
  readonly task: Task;
  readonly counts: TaskCounts = { total: 0, ran: 0, cached: 0, failed: 0, final: false };
  /** Items produced so far (cached, ran, or placeholders in a plan). */
  readonly done = new Map<string, Produced>();
  readonly failed = new Map<string, string>();
  readonly #keys = new Map<string, string>();
  /** Action keys by item: this run's decisions, and a cached item's from its output. */
  readonly keys: KeyLookup = {
    get: (id) => this.#keys.get(id) ?? this.done.get(id)?.key,
    has: (id) => this.#keys.has(id) || this.done.get(id)?.key !== undefined,
  };
  /** Current key components of the items that are not cached. */
  readonly components = new Map<string, KeyComponents>();
  /** Items that are not cached, and why (a plan; a run records what it ran). */
  readonly plans = new Map<string, ItemPlan>();
  /** Items listed or followed, in order. */
  readonly expected: string[] = [];
  /** Set when a plan cannot list the items (what they come from would run first). */
  unlisted?: string;
  status: TaskStatus = "ok";
  reason?: string;
  /** Items whose action ran in this run (successfully or not). */
  readonly executed: string[] = [];
  readonly slice: Record<string, Json>;
  readonly ctx: TaskContext<unknown>;
  readonly actions: ActionRunner;
  decider!: ActionDecider;
  taskHash = "";
  /** Input digests of the task's declared files (identities, or unknown markers in a plan). */
  fileInputs: Record<string, string> = {};
  #planned: Record<string, PlannedFile> = {};
  #loadError?: unknown;
  #listeners: ((id: string, p: Produced) => void)[] = [];
  readonly #finished: Promise<void>;
  #resolveFinished!: () => void;
  #ended = false;

  constructor(run: RunContext, task: Task) {
    this.run = run;
    this.task = task;
    this.slice = configSlice(run.options.config, task.config);
    this.#finished = new Promise((resolve) => this.#resolveFinished = resolve);
    this.ctx = {
      config: projectConfig(run.options.config, task.config, task.reads),
      store: run.options.store,
      cacheDir: run.options.store.root,
      signal: run.options.signal,
      log: (message, detail) =>
        run.options.reporter.emit({
          event: "log",
          task: task.name,
          message,
          ...(detail === undefined ? {} : { detail }),
        }),
      files: {},
      limit: run.options.limit,
      configFile: run.options.configFile,
    };
    this.actions = new ActionRunner(this);
  }

  get name(): string {
    return this.task.name;
  }
  get signal(): AbortSignal {
    return this.run.options.signal;
  }
  get store(): ObjectStore {
    return this.run.options.store;
  }
  get config(): unknown {
    return this.run.options.config;
  }
  get files(): Record<string, StoredFile> {
    return this.ctx.files;
  }
  get dryRun(): boolean {
    return this.run.options.dryRun ?? false;
  }

  /** Reads the task's records and source, and plans its files. */
  async load(): Promise<void> {
    const { records } = this.run.options;
    const [current, superseded, failures, identity] = await Promise.all([
      records.actions(this.name),
      records.superseded(this.name),
      records.failures(this.name),
      taskIdentity(this.task, this.slice),
    ]);
    const { components } = identity;
    this.taskHash = identity.hash;
    if (!this.dryRun) {
      this.run.writer.set(KEYS.configSlice(this.name, components.config), this.slice);
      this.run.writer.set(KEYS.taskComponents(this.name, this.taskHash), components);
    }
    this.decider = new ActionDecider({
      task: this.name,
      sourceName: basename(fileURLToPath(this.task.source)),
      components,
      taskHash: this.taskHash,
      slice: this.slice,
      records: current,
      superseded,
      failures,
      forced: this.run.options.force?.includes(this.name) ?? false,
      recordedComponents: (hash) => records.taskComponents(this.name, hash),
      recordedSlice: (hash) => records.configSlice(this.name, hash),
      objectsPresent: async (rec) => {
        for (const d of Object.values(rec.objects)) if (!(await this.store.has(d))) return false;
        return true;
      },
    });
    try {
      this.#planned = await planFiles(
        this.task.files?.(this.ctx.config) ?? {},
        this.config,
        records,
      );
      this.fileInputs = fileInputDigests(this.#planned);
    } catch (e) {
      // The plan and the run fail the task alike, with the same message.
      this.#loadError = e;
    }
  }

  /** The current action records of the task, by item. */
  get records(): Map<string, ActionRecord> {
    return this.decider.facts.records;
  }

  finished(): Promise<void> {
    return this.#finished;
  }

  /** Calls `listener` for every item produced so far and from now on. */
  subscribe(listener: (id: string, p: Produced) => void): void {
    for (const [id, p] of this.done) listener(id, p);
    this.#listeners.push(listener);
  }

  async drive(): Promise<void> {
    const { reporter } = this.run.options;
    const task = this.task;
    try {
      const flowDeps = task.kind === "each" && !task.items
        ? task.deps.filter((d) => this.run.driver(d).task.kind === "each")
        : [];
      const waitFor = task.deps.filter((d) => !flowDeps.includes(d));
      await Promise.all(waitFor.map((d) => this.run.driver(d).finished()));
      for (const d of waitFor) {
        const s = this.run.driver(d);
        // A per-item task whose final check failed still hands on the items it finished.
        const usable = s.task.kind === "each" && s.status === "failed" && s.done.size > 0;
        if ((s.status === "failed" && !usable) || s.status === "blocked") {
          return this.#end("blocked", `upstream task "${d}" ${s.status}`);
        }
      }
      if (this.signal.aborted) return this.#end("interrupted");
      reporter.emit({ event: "task-start", task: task.name });
      if (this.#loadError !== undefined) throw this.#loadError;
      if (!this.dryRun && Object.keys(this.#planned).length > 0) {
        const files = await storeFiles(this.name, this.#planned, {
          store: this.store,
          records: this.run.options.records,
          writer: this.run.writer,
          aliases: this.run.aliases,
          signal: this.signal,
          download: this.task.download?.(this.ctx.config),
          log: this.ctx.log,
          policy: this.actions.retryPolicy(),
        });
        this.fileInputs = files.inputs;
        this.ctx.files = files.stored;
      }
      if (task.kind === "aggregate") await driveAggregate(this, task);
      else if (!(await driveItems(this, task, flowDeps))) return;
      this.#end(this.signal.aborted ? "interrupted" : this.status, this.reason);
    } catch (e) {
      this.run.fault(e);
      this.#end(this.signal.aborted ? "interrupted" : "failed", errorText(e));
    }
  }

  /** Ends the task as blocked by an upstream task. */
  block(reason: string): void {
    this.#end("blocked", reason);
  }

  #end(status: TaskStatus, reason?: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.status = status;
    this.reason = reason;
    this.counts.final = true;
    const summary = this.dryRun ? this.#planSummary() : undefined;
    this.run.options.reporter.emit({
      event: "task-end",
      task: this.name,
      status,
      counts: { ...this.counts },
      reason,
      wouldRun: summary?.run,
      mayRun: summary?.may,
      unlisted: this.dryRun ? this.unlisted : undefined,
    });
    this.#resolveFinished();
  }

  #planSummary(): { run: Record<string, number>; may: Record<string, number> } {
    const out = { run: {} as Record<string, number>, may: {} as Record<string, number> };
    for (const plan of this.plans.values()) {
      const into = out[plan.verdict];
      for (const reason of plan.reasons) into[reason.text] = (into[reason.text] ?? 0) + 1;
    }
    return out;
  }

  // ---- decisions ----

  /** Applies the decision for an item: hand on its cached output, plan it, or queue it. */
  apply(
    item: Item,
    inputs: Record<string, string>,
    params: string | undefined,
    decision: Decision,
    pool: Pool | null,
  ): void {
    const id = item.id;
    if (decision.verdict === "cached") {
      if (decision.revived && !this.dryRun) this.actions.revive(id, decision.record);
      this.counts.cached++;
      const out: Output = { objects: decision.record.objects, meta: decision.record.meta };
      this.run.remember(out, decision.record.digest);
      this.produce(id, { out, digest: decision.record.digest, key: decision.key });
      return;
    }
    const comps = this.decider.components(inputs, params);
    this.components.set(id, comps);
    if (decision.verdict === "run" && decision.key !== undefined) this.setKey(id, decision.key);
    if (this.dryRun || pool === null) {
      this.plans.set(id, { verdict: decision.verdict, reasons: decision.reasons });
      this.run.options.reporter.emit({
        event: "plan",
        task: this.name,
        item: id,
        verdict: decision.verdict,
        reasons: decision.reasons.map((r) => r.text),
      });
      this.#producePending(id);
      return;
    }
    if (decision.verdict !== "run" || decision.key === undefined) {
      throw new TaskContractError(
        `task "${this.name}": item "${id}" has inputs that are not known while running`,
      );
    }
    this.run.space.expect(
      this.name,
      item.params,
      () => [...this.records.values()].slice(0, 16).map((r) => Object.values(r.objects)),
    );
    pool.add({ item, key: decision.key, comps, attempts: 0 });
  }

  /** Hands an item's output to the tasks that follow this one. */
  /** Notes the key of an action this run decided to run. */
  setKey(id: string, key: string): void {
    this.#keys.set(id, key);
  }

  produce(id: string, p: Produced): void {
    this.done.set(id, p);
    for (const l of this.#listeners) l(id, p);
  }

  /** A plan's stand-in for an output that does not exist yet. */
  #producePending(id: string): void {
    const out: Output = { objects: {}, meta: null };
    const digest = pendingDigest(this.name);
    this.run.remember(out, digest);
    this.produce(id, { out, digest });
  }

  /** The digest a dependant keys on for the output of task `d` as a whole. */
  wholeInput(d: string): string {
    const s = this.run.driver(d);
    if (s.task.kind === "aggregate") return s.done.get(AGGREGATE_ITEM)!.digest;
    if (s.unlisted || [...s.done.values()].some((p) => isProvisional(p.digest))) {
      return pendingDigest(d);
    }
    const items = [...s.done].map(([id, p]) => [id, p.digest]);
    items.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    const fails = [...this.run.upstream().failures(d)].map(([id, f]) => [id, f.task, f.reason]);
    fails.sort((a, b) => a[0] < b[0] ? -1 : 1);
    return sha256Hex(canonicalJson({ items, fails }));
  }
}

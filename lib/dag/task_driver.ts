/**
 * Driving one task through a run or a plan: wait for what it reads, resolve its files, then
 * ask the decision for its single action (an aggregate task) or for each item (see
 * item_flow.ts); hand on cached outputs at once and run the rest (a plan hands on placeholders
 * and notes why instead). The driver is the one place that turns a decision into a change of
 * the task's state (task_state.ts) — for a plan, a run, and a rebuild of damaged objects — so it
 * is one module of over 400 lines; the flows, the action runner and the repair reach it through
 * the narrow hosts they declare, and loading (task_load.ts) and files (task_files.ts) are
 * modules of their own.
 *
 * @module
 */
import { type ActionRecord, KEYS, type Output } from "../store/records.ts";
import { paramsHash } from "./action_key.ts";
import { loadTask } from "./task_load.ts";
import { ActionRunner } from "./action_runner.ts";
import { configSlice, projectConfig } from "./config.ts";
import { errorText, TaskContractError } from "./errors.ts";
import type { TaskStatus } from "./events.ts";
import { TaskFiles } from "./task_files.ts";
import { driveItems, type ItemFlowHost } from "./item_flow.ts";
import { type AggregateFlowHost, driveAggregate } from "./aggregate_flow.ts";
import type { Pool, Work } from "./pool.ts";
import { RemotePool } from "./remote_pool.ts";
import { executorOf, remotePlan } from "./remote.ts";
import { WorkPool } from "./work_pool.ts";
import type { RunContext, TaskView } from "./run_context.ts";
import { type TaskSummary, taskSummary } from "./run_result.ts";
import { ActionDecider, type Decision, pendingDigest, type StaleReason } from "./staleness.ts";
import type { EachTask, Item, ItemOutputs, Json, Task, TaskContext, Upstream } from "./task.ts";
import { okRecords, type OutputSource, taskOutputs } from "./task_outputs.ts";
import { wholeDigest } from "./whole_hash.ts";
import { FollowQueue } from "./item_join.ts";
import type { Produced } from "./item_join.ts";
import { InputRepair, ItemRebuild } from "./damage_repair.ts";
import { TaskState } from "./task_state.ts";

/** Drives one task. */
export class TaskDriver implements TaskView, ItemFlowHost, AggregateFlowHost {
  readonly run: RunContext;
  readonly task: Task;
  readonly state: TaskState;
  readonly ctx: TaskContext<unknown>;
  readonly #slice: Record<string, Json>;
  readonly #actions: ActionRunner;
  #decider!: ActionDecider;
  #taskHash = "";
  /** The task's declared files (created with its identity, when its code is known). */
  #files!: TaskFiles;
  #loadError?: unknown;
  /** Records written before code identity adopted under new keys so far (see adoption.ts). */
  #adopted: () => number = () => 0;
  /** Records a plan would make current again, by item (a run writes them instead). */
  readonly #revived = new Map<string, ActionRecord>();
  /** Objects of a few records, for an estimate of what an action stores. */
  readonly #sample: string[][] = [];
  /** Decisions that had to wait (a record's components read from the records), in order. */
  #chain = Promise.resolve();
  /** The per-item tasks whose items this one follows (none for an `items()` task). */
  #flowDeps: string[] = [];
  /** The input digests of one of its items (set by the item flow). */
  #itemInputs?: (item: Item) => Record<string, string>;
  /** What the decision of an aggregate task's action that runs found recorded before it. */
  decided: Pick<Work, "prev" | "failedBefore"> = {};
  /** The pool of its actions that are not cached. */
  #pool?: Pool;
  readonly #repair: InputRepair;
  readonly #rebuild: ItemRebuild;

  constructor(run: RunContext, task: Task) {
    this.run = run;
    this.task = task;
    this.state = new TaskState(task.name, run.items, { watch: run.options.watch });
    this.#slice = configSlice(run.options.config, task.config);
    this.ctx = {
      config: projectConfig(run.options.config, task.config, task.reads),
      keyed: projectConfig(run.options.config, task.config),
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
    this.#actions = new ActionRunner(this);
    this.#repair = new InputRepair({
      name: task.name,
      run,
      deps: task.deps,
      readmit: (item, pool) => this.#readmit(item, pool),
      fail: (work, e) => this.#actions.recordFailure(work, e, 0),
    });
    this.#rebuild = new ItemRebuild({
      finished: () => this.state.finished(),
      queueRebuild: (id, pool) => this.#queueRebuild(id, pool),
      openPool: () => this.openPool(this.task as EachTask),
      release: () => this.#actions.release(),
    });
  }

  get name(): string {
    return this.task.name;
  }
  get outcome(): TaskState {
    return this.state;
  }
  get signal(): AbortSignal {
    return this.run.options.signal;
  }
  get dryRun(): boolean {
    return this.run.options.dryRun ?? false;
  }
  get taskHash(): string {
    return this.#taskHash;
  }
  get decider(): ActionDecider {
    return this.#decider;
  }
  get fileInputs(): Readonly<Record<string, string>> {
    return this.#files.inputs;
  }

  /** Reads the task's records and source, and plans its files. */
  async load(): Promise<void> {
    const loaded = await loadTask(this.run, this.task, {
      slice: this.#slice,
      config: this.ctx.config,
    });
    this.#decider = loaded.decider;
    this.#taskHash = loaded.decider.facts.taskHash;
    this.#files = loaded.files;
    this.#loadError = loaded.error;
    this.#adopted = loaded.adopted;
  }

  /** How many records written before code identity were adopted under new keys so far. */
  get adopted(): number {
    return this.#adopted();
  }

  async drive(): Promise<void> {
    const { reporter } = this.run.options;
    const task = this.task;
    const flowDeps = task.kind === "each" && !task.items
      ? task.deps.filter((d) => this.run.driver(d).task.kind === "each")
      : [];
    this.#flowDeps = flowDeps;
    // Followed before anything flows (every driver starts before any item is produced), so no
    // output is kept for a follower that comes late.
    const follow = flowDeps.length
      ? new FollowQueue(flowDeps.map((d) => this.run.driver(d).outcome))
      : null;
    try {
      const waitFor = task.deps.filter((d) => !flowDeps.includes(d));
      await Promise.all(waitFor.map((d) => this.run.driver(d).outcome.finished()));
      for (const d of waitFor) {
        const s = this.run.driver(d);
        const { status, okCount } = s.outcome;
        // A per-item task whose final check failed still hands on the items it finished.
        const usable = s.task.kind === "each" && status === "failed" && okCount > 0;
        if ((status === "failed" && !usable) || status === "blocked") {
          return this.#end("blocked", `upstream task "${d}" ${status}`);
        }
      }
      if (this.signal.aborted) return this.#end("interrupted");
      reporter.emit({ event: "task-start", task: task.name });
      if (this.#loadError !== undefined) throw this.#loadError;
      if (!this.dryRun) {
        await this.#files.store({
          writer: this.run.writer,
          signal: this.signal,
          download: this.task.download?.(this.ctx.config),
          log: this.ctx.log,
          policy: this.#actions.retryPolicy(),
        });
        this.ctx.files = this.#files.stored;
      }
      if (task.kind === "aggregate") await driveAggregate(this, task);
      else if (!(await driveItems(this, task, flowDeps, follow))) return;
      this.#end(this.signal.aborted ? "interrupted" : this.state.status, this.state.reason);
    } catch (e) {
      this.run.fault(e);
      this.#end(this.signal.aborted ? "interrupted" : "failed", errorText(e));
    } finally {
      // A task that ended without taking its items keeps none of those still to come.
      follow?.drop();
    }
  }

  /** Ends the task as blocked by an upstream task. */
  block(reason: string): void {
    this.#end("blocked", reason);
  }

  #end(status: TaskStatus, reason?: string): void {
    if (!this.state.end(status, reason)) return;
    const summary = this.dryRun ? this.#planSummary() : undefined;
    this.run.options.reporter.emit({
      event: "task-end",
      task: this.name,
      status,
      counts: { ...this.state.counts },
      reason,
      wouldRun: summary?.run,
      mayRun: summary?.may,
      unlisted: this.dryRun ? this.state.unlisted : undefined,
      remote: this.dryRun && this.task.kind === "each"
        ? remotePlan(
          this.run.options.executor,
          this.name,
          this.state.tally.run,
          this.state.tally.may,
        )
        : undefined,
    });
  }

  #planSummary(): { run: Record<string, number>; may: Record<string, number> } {
    const out = { run: {} as Record<string, number>, may: {} as Record<string, number> };
    for (const g of this.state.tally.groups) out[g.verdict][g.reason.text] = g.count;
    return out;
  }

  // ---- what the flows ask ----

  /** The pool this task's actions that are not cached go to. */
  openPool(task: EachTask): Pool {
    const executor = this.dryRun ? undefined : executorOf(this.run.options.executor, task.name);
    return this.#pool = executor
      ? new RemotePool(this.#actions, task, executor)
      : new WorkPool(this.#actions, task);
  }

  /** The prepared state of the task, when `prepare` ran (for its summary). */
  preparedState(): Promise<unknown> | undefined {
    return this.#actions.state;
  }

  /** Releases what `prepare` opened (`teardown`), so that a later pool prepares again. */
  async release(): Promise<void> {
    await this.#actions.release();
  }

  useInputs(inputs: (item: Item) => Record<string, string>): void {
    this.#itemInputs = inputs;
  }

  upstream(): Upstream {
    return this.run.upstream();
  }

  /**
   * Takes one item with its input digests: decides it, and hands its output on, plans it or
   * queues it on `pool` (`null` for an aggregate task's action, which the flow runs itself).
   * Decisions that have to read the records are applied in the order the items came.
   */
  admit(item: Item, inputs: Record<string, string>, pool: Pool | null, again = false): void {
    const params = paramsHash(item.params);
    if (!again) this.state.listed(item.id);
    const decision = this.#decider.decide(item.id, inputs, params);
    if (!(decision instanceof Promise)) return this.#apply(item, inputs, params, decision, pool);
    // A decision waiting for the records is in flight too: listings wait while many are.
    const gate = this.run.gate;
    gate.enter();
    this.#chain = this.#chain.then(async () => {
      try {
        this.#apply(item, inputs, params, await decision, pool);
      } finally {
        gate.leave();
      }
    });
  }

  /** Resolves once every admitted item's decision is applied. */
  async admitted(): Promise<void> {
    await this.#chain;
  }

  /** Hands on a cached output, plans the item, or queues it. */
  #apply(
    item: Item,
    inputs: Record<string, string>,
    params: string | undefined,
    decision: Decision,
    pool: Pool | null,
  ): void {
    const id = item.id;
    if (decision.verdict === "cached") {
      const rec = decision.record;
      if (decision.revived && !this.dryRun) this.#actions.revive(id, rec, decision.current);
      // A plan writes nothing: what it revived is read from here (only such items are kept).
      else if (decision.revived) this.#revived.set(id, rec);
      if (this.#sample.length < 16) this.#sample.push(Object.values(rec.objects));
      const out: Output = { objects: rec.objects, meta: rec.meta };
      this.run.remember(out, rec.digest);
      this.state.cached(id, { out, digest: rec.digest, key: decision.key });
      return;
    }
    const comps = this.#decider.components(inputs, params);
    this.state.stale(id, comps, decision.verdict === "run" ? decision.key : undefined);
    if (this.dryRun) return this.#plan(id, decision.verdict, decision.reasons);
    // An aggregate task's single action is run by its flow.
    if (pool === null) {
      if (decision.verdict === "run") {
        this.decided = { prev: decision.current, failedBefore: decision.failedBefore };
      }
      return;
    }
    if (decision.verdict !== "run" || decision.key === undefined) {
      throw new TaskContractError(
        `task "${this.name}": item "${id}" has inputs that are not known while running`,
      );
    }
    const { current, failedBefore } = decision;
    if (current && this.#sample.length < 16) this.#sample.push(Object.values(current.objects));
    this.run.space.expect(this.name, item.params, () => this.#sample);
    this.#queue({ item, key: decision.key, comps, attempts: 0, prev: current, failedBefore }, pool);
  }

  /** Queues an action once its input objects are found in the store (or rebuilt). */
  #queue(work: Work, pool: Pool): void {
    if (!Object.values(work.item.inputs).some((out) => hasObjects(out))) return pool.add(work);
    pool.hold(
      this.#repair.missing(work.item).then((gone) =>
        gone.length > 0 ? this.#repair.repair(work, gone, pool) : pool.add(work)
      ),
    );
  }

  /**
   * Whether the failure `e` of `work` is that of a damaged input object: its repair is then
   * under way, and the action is queued again once its input is rebuilt.
   */
  repairs(work: Work, e: unknown): boolean {
    return this.#pool !== undefined && this.#repair.handle(work, e, this.#pool);
  }

  /** Decides an item again (its inputs rebuilt) and applies the decision. */
  async #readmit(item: Item, pool: Pool): Promise<void> {
    const inputs = this.#itemInputs!(item);
    const params = paramsHash(item.params);
    this.#apply(item, inputs, params, await this.#decider.decide(item.id, inputs, params), pool);
  }

  // ---- rebuilding an item whose output objects were damaged ----

  rebuild(id: string): Promise<Produced | null> {
    return this.#rebuild.rebuild(id);
  }

  invalidate(id: string): void {
    this.#decider.facts.records.delete(id);
    if (!this.dryRun) this.run.writer.delete(KEYS.action(this.name, id));
  }

  /** Whether a recorded action of item `id` rebuilds its output (see {@link ItemRebuild}). */
  rebuilding(id: string): boolean {
    return this.#rebuild.rebuilding(id);
  }

  /** The rebuilt output of item `id`, recorded: it replaces the old one. */
  rebuilt(id: string, p: Produced, ran: boolean): void {
    this.state.rebuilt(id, p, ran);
    this.#rebuild.recorded(id, p);
  }

  async #queueRebuild(id: string, pool: Pool): Promise<Produced | null | undefined> {
    this.invalidate(id);
    const item = await this.#itemFor(id);
    if (item === null || !this.#itemInputs) return null;
    const inputs = this.#itemInputs(item);
    const params = paramsHash(item.params);
    const decision = await this.#decider.decide(id, inputs, params);
    if (decision.verdict === "cached") {
      if (decision.revived) this.#actions.revive(id, decision.record, decision.current);
      const out: Output = { objects: decision.record.objects, meta: decision.record.meta };
      this.run.remember(out, decision.record.digest);
      const p = { out, digest: decision.record.digest, key: decision.key };
      this.rebuilt(id, p, false);
      return p;
    }
    if (decision.verdict !== "run" || decision.key === undefined) return null;
    const comps = this.#decider.components(inputs, params);
    this.state.stale(id, comps, decision.key);
    const { current: prev, failedBefore } = decision;
    this.#queue(
      { item, key: decision.key, comps, attempts: 0, rebuild: true, prev, failedBefore },
      pool,
    );
    return undefined;
  }

  /** Item `id` as the task has it now: from the items it follows, or listed again. */
  async #itemFor(id: string): Promise<Item | null> {
    const task = this.task as EachTask;
    if (!task.items) {
      const inputs: Record<string, Output> = {};
      for (const dep of this.#flowDeps) {
        const e = await this.run.driver(dep).outputs().get(id);
        if (!e) return null;
        inputs[dep] = e.out;
      }
      return { id, inputs };
    }
    for await (const spec of await task.items(this.ctx, this.run.upstream())) {
      if (spec.id === id) {
        return { id, inputs: spec.inputs ?? {}, params: spec.params, extra: spec.extra };
      }
    }
    return null;
  }

  /** Notes what a plan says about an item, and lets a placeholder flow on in its place. */
  #plan(id: string, verdict: "run" | "may", reasons: StaleReason[]): void {
    this.run.options.reporter.emit({
      event: "plan",
      task: this.name,
      item: id,
      verdict,
      reasons: reasons.map((r) => r.text),
    });
    const out: Output = { objects: {}, meta: null };
    const digest = pendingDigest(this.name);
    this.run.remember(out, digest);
    this.state.planned(id, { verdict, reasons }, { out, digest });
  }

  /** The input digests of the task's files and of the tasks it reads as a whole. */
  async wholeInputs(deps: readonly string[]): Promise<Record<string, string>> {
    const inputs: Record<string, string> = { ...this.#files.inputs };
    for (const dep of deps) inputs[dep] = await this.#wholeInput(dep);
    return inputs;
  }

  /** The digest a dependant keys on for the output of task `d` as a whole. */
  #wholeInput(d: string): Promise<string> | string {
    const s = this.run.driver(d);
    const { aggregate, unlisted, provisional } = s.outcome;
    if (s.task.kind === "aggregate") return aggregate!.digest;
    if (unlisted || provisional) return pendingDigest(d);
    const failures = this.run.upstream().failures(d);
    // Hashed as the items came, when they came in order and none failed.
    const hashed = failures.size === 0 ? s.outcome.wholeDigest() : null;
    if (hashed !== null) return hashed;
    const fails = [...failures].map(([id, f]): [string, string, string] => [
      id,
      f.task,
      f.reason,
    ]);
    return wholeDigest(() => s.outputDigests(), fails);
  }

  /** What the aggregate flow asks of the single action: run it under the retry policy. */
  get actions(): ActionRunner {
    return this.#actions;
  }

  // ---- what other tasks read ----

  fileDigests(): Record<string, string> {
    return this.#files.digests();
  }

  outputs(): ItemOutputs {
    return taskOutputs(this.#outputSource());
  }

  async *outputDigests(): AsyncGenerator<[string, string]> {
    for await (const [id, rec] of okRecords(this.#outputSource())) yield [id, rec.digest];
  }

  #outputSource(): OutputSource {
    const { records } = this.run.options;
    return {
      name: this.name,
      records,
      writer: this.run.writer,
      outcome: this.state,
      remember: (out, digest) => this.run.remember(out, digest),
      overlay: this.#revived,
    };
  }

  /** What `run`, `status` and `explain` read about this task. */
  summary(): TaskSummary {
    const { records } = this.run.options;
    return taskSummary(
      this.state,
      this.#decider,
      this.#slice,
      (id) => records.action(this.name, id),
    );
  }
}

/** Whether an output names any stored object. */
function hasObjects(out: Output): boolean {
  for (const _ in out.objects) return true;
  return false;
}

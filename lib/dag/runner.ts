/**
 * The runner: plans the targets, walks the graph and lets items flow from one per-item task to
 * the next without stage barriers. Cached items are decided from one prefix scan per task;
 * results are recorded per item in batched KV commits after their objects are durable.
 *
 * @module
 */
import { canonicalJson, hashJson, sha256Hex } from "../store/canonical.ts";
import { actionKey, outputDigest, taskHash } from "./action_key.ts";
import { ObjectAliases } from "../store/aliases.ts";
import type { ObjectStore } from "../store/objects.ts";
import { join } from "node:path";
import type {
  ActionRecord,
  FailureRecord,
  KeyComponents,
  Output,
  Records,
  RecordWriter,
  TaskComponents,
} from "../store/records.ts";
import { AGGREGATE_ITEM, KEYS } from "../store/records.ts";
import { configSlice, diffSlices, projectConfig } from "./config.ts";
import { observedReporter, type RunFacts, RunFactsCollector } from "./run_facts.ts";
import type { Reporter, TaskCounts, TaskStatus } from "./events.ts";
import type { TaskGraph } from "./graph.ts";
import { type Executor, readResults, resultPath, type WorkList } from "./remote.ts";
import {
  checkpointPath,
  DEFAULT_RETRY,
  isAbort,
  itemContext,
  type PoolHost,
  withRetry,
  type Work,
  WorkPool,
} from "./work_pool.ts";
import type {
  ActionResult,
  AggregateTask,
  EachTask,
  Item,
  ItemContext,
  Json,
  RetryPolicy,
  Task,
  TaskContext,
  Upstream,
} from "./task.ts";

/** How to run. */
export interface RunOptions {
  graph: TaskGraph;
  targets: string[];
  config: unknown;
  store: ObjectStore;
  records: Records;
  reporter: Reporter;
  signal: AbortSignal;
  /** Only the first N items of every listing (for trying things). */
  limit?: number;
  /** Plan only: decide what would run and why, execute nothing. */
  dryRun?: boolean;
  /** Tasks whose cache is ignored. */
  force?: string[];
  /** Concurrency override for every per-item task. */
  concurrency?: number;
  /** Runs some per-item tasks elsewhere (e.g. as Slurm job arrays). */
  executor?: Executor;
  /**
   * Let per-item tasks sum themselves up (`EachTask.summarize`). Default true; `status` and
   * `explain` plan without them.
   */
  summaries?: boolean;
}

/** Why one item would run (dry run / explain). */
export interface StaleReason {
  kind: "new" | "failed" | "version" | "source" | "config" | "inputs" | "params" | "forced";
  text: string;
}

/** What a run did. */
export interface RunResult {
  run: number;
  status: "ok" | "failed" | "interrupted";
  exitCode: number;
  tasks: Map<string, TaskSummary>;
}

/** One task's part of a run. */
export interface TaskSummary {
  status: TaskStatus;
  counts: TaskCounts;
  reason?: string;
  keys: Map<string, string>;
  components: Map<string, KeyComponents>;
  records: Map<string, ActionRecord>;
  /** Dry run: item → reasons it would run. */
  stale: Map<string, StaleReason[]>;
  failures: Map<string, string>;
  slice: Record<string, Json>;
  /** The components the recorded action of an item was keyed with. */
  recordedComponents(id: string): Promise<KeyComponents | null>;
}

/** Prefix marking a digest that is not known yet because its producer would run first. */
const PENDING = "pending:";

interface Produced {
  out: Output;
  digest: string;
}

/** Runs (or, with `dryRun`, plans) the targets. */
export async function runPipeline(options: RunOptions): Promise<RunResult> {
  const runner = new Runner(options);
  return await runner.run();
}

class Runner {
  readonly o: RunOptions;
  readonly runId = Date.now();
  readonly writer: RecordWriter;
  readonly states = new Map<string, TaskState>();
  readonly aliases: ObjectAliases;
  readonly #digests = new WeakMap<Output, string>();
  readonly #checkpointsDone: string[] = [];

  /** What published outputs state about this run (see run_facts.ts). */
  readonly facts: RunFactsCollector;

  constructor(options: RunOptions) {
    const aggregates = options.graph.order.filter((t) => t.kind === "aggregate");
    this.facts = new RunFactsCollector({ aggregates: aggregates.map((t) => t.name) });
    this.o = { ...options, reporter: observedReporter(options.reporter, this.facts) };
    this.writer = options.records.writer(() => options.store.syncDirs());
    this.aliases = new ObjectAliases(options.records, options.store);
  }

  async run(): Promise<RunResult> {
    const { graph, targets, reporter, dryRun = false } = this.o;
    const plan = graph.closure(targets);
    const started = performance.now();
    reporter.emit({
      event: "run-start",
      run: this.runId,
      targets,
      tasks: plan.map((t) => t.name),
      dryRun,
    });
    if (!dryRun) {
      await this.o.records.putRun({
        id: this.runId,
        started: new Date().toISOString(),
        status: "running",
        targets,
        pid: Deno.pid,
      });
    }
    for (const task of plan) this.states.set(task.name, new TaskState(this, task));
    await Promise.all([...this.states.values()].map((s) => s.load()));
    await Promise.all([...this.states.values()].map((s) => s.drive()));
    await this.writer.flush();
    for (const path of this.#checkpointsDone) await removeCheckpoint(this.o.store, path);
    // Checkpoints of actions an earlier, killed run finished (its records made it, the
    // clean-up did not).
    for (const s of this.states.values()) {
      const dir = join(this.o.store.root, "checkpoints", s.task.name);
      const keys = new Set([...s.records.values()].map((r) => r.key));
      const entries = await Array.fromAsync(Deno.readDir(dir)).catch(() => []);
      for (const e of entries) {
        if (keys.has(e.name)) await removeCheckpoint(this.o.store, join(dir, e.name));
        // A reference half-written when a run was killed (this run holds the lease).
        else if (e.name.includes(".tmp-")) await Deno.remove(join(dir, e.name)).catch(() => {});
      }
    }

    const interrupted = this.o.signal.aborted;
    const failed = [...this.states.values()].some((s) => s.status !== "ok" || s.failed.size > 0);
    const status = interrupted ? "interrupted" : failed ? "failed" : "ok";
    const exitCode = interrupted ? 130 : failed ? 1 : 0;
    if (!dryRun) {
      const counts: Record<string, { ran: number; cached: number; failed: number; total: number }> =
        {};
      for (const [name, s] of this.states) {
        counts[name] = {
          ran: s.counts.ran,
          cached: s.counts.cached,
          failed: s.counts.failed,
          total: s.counts.total,
        };
      }
      const atomic = this.o.records.kv.atomic().set(KEYS.run(this.runId), {
        id: this.runId,
        started: new Date(Date.now() - (performance.now() - started)).toISOString(),
        finished: new Date().toISOString(),
        status,
        targets,
        pid: Deno.pid,
        counts,
      });
      for (const [name, s] of this.states) {
        if (s.counts.ran > 0 || s.counts.failed > 0) {
          atomic.set(KEYS.lastRun(name), { lastRun: new Date().toISOString(), run: this.runId });
        }
      }
      await atomic.commit();
    }
    reporter.emit({
      event: "run-end",
      run: this.runId,
      status,
      exitCode,
      seconds: (performance.now() - started) / 1000,
    });
    const tasks = new Map<string, TaskSummary>();
    for (const [name, s] of this.states) tasks.set(name, s.summary());
    return { run: this.runId, status, exitCode, tasks };
  }

  digestOf(out: Output): string {
    let d = this.#digests.get(out);
    if (d === undefined) {
      d = outputDigest(out);
      this.#digests.set(out, d);
    }
    return d;
  }

  remember(out: Output, digest: string): void {
    this.#digests.set(out, digest);
  }

  checkpointDone(path: string): void {
    this.#checkpointsDone.push(path);
  }

  upstream(): Upstream {
    const state = (name: string) => {
      const s = this.states.get(name);
      if (!s) throw new Error(`task "${name}" is not part of this run`);
      return s;
    };
    return {
      aggregate: (name) => {
        const out = state(name).done.get(AGGREGATE_ITEM)?.out;
        if (!out) throw new Error(`aggregate task "${name}" has no output`);
        return out;
      },
      items: (name) => {
        const out = new Map<string, Output>();
        for (const [id, p] of state(name).done) out.set(id, p.out);
        return out;
      },
      failures: (name) => {
        const out = new Map<string, { task: string; reason: string }>();
        for (const t of this.o.graph.closure([name])) {
          const s = this.states.get(t.name);
          for (const [id, reason] of s?.failed ?? []) {
            if (!out.has(id)) out.set(id, { task: t.name, reason });
          }
        }
        return out;
      },
      keys: (name) => state(name).keys,
      taskInputs: (name) => state(name).taskInputs(),
      durations: (name) => {
        const s = state(name);
        const out = new Map<string, number>();
        for (const id of s.done.keys()) out.set(id, s.records.get(id)?.ms ?? 0);
        return out;
      },
    };
  }
}

class TaskState implements PoolHost {
  readonly r: Runner;
  readonly task: Task;
  readonly counts: TaskCounts = { total: 0, ran: 0, cached: 0, failed: 0, final: false };
  readonly done = new Map<string, Produced>();
  readonly failed = new Map<string, string>();
  readonly keys = new Map<string, string>();
  readonly components = new Map<string, KeyComponents>();
  readonly stale = new Map<string, StaleReason[]>();
  readonly expected: string[] = [];
  status: TaskStatus = "ok";
  reason?: string;
  records = new Map<string, ActionRecord>();
  olds = new Map<string, ActionRecord[]>();
  priorFailures = new Map<string, FailureRecord>();
  readonly slice: Record<string, Json>;
  readonly sliceHash: string;
  readonly ctx: TaskContext<unknown>;
  #source = "";
  #prefix = "";
  #taskInputs: Record<string, string> = {};
  #listeners: ((id: string, p: Produced) => void)[] = [];
  #finished!: Promise<void>;
  #resolveFinished!: () => void;
  readonly #force: boolean;
  readonly prefix = () => this.#prefix;
  readonly signal: AbortSignal;
  readonly concurrency?: number;
  #ended = false;
  readonly #partsCache = new Map<string, TaskComponents | null>();

  constructor(runner: Runner, task: Task) {
    this.r = runner;
    this.task = task;
    this.slice = configSlice(runner.o.config, task.config);
    this.sliceHash = hashJson(this.slice);
    this.#force = runner.o.force?.includes(task.name) ?? false;
    this.signal = runner.o.signal;
    this.concurrency = runner.o.concurrency;
    this.#finished = new Promise((resolve) => this.#resolveFinished = resolve);
    this.ctx = {
      config: projectConfig(runner.o.config, [...task.config, ...task.reads ?? []]),
      store: runner.o.store,
      cacheDir: runner.o.store.root,
      signal: runner.o.signal,
      log: (message) => runner.o.reporter.emit({ event: "log", task: task.name, message }),
    };
  }

  async load(): Promise<void> {
    const { records } = this.r.o;
    const [recs, olds, fails, source] = await Promise.all([
      records.actions(this.task.name),
      records.superseded(this.task.name),
      records.failures(this.task.name),
      readSource(this.task),
    ]);
    this.records = recs;
    this.olds = olds;
    this.priorFailures = fails;
    this.#source = source;
    const parts: TaskComponents = { version: this.task.version, source, config: this.sliceHash };
    this.#prefix = taskHash(this.task.name, parts);
    if (!this.r.o.dryRun) {
      this.r.writer.set(KEYS.configSlice(this.task.name, this.sliceHash), this.slice);
      this.r.writer.set(KEYS.taskComponents(this.task.name, this.#prefix), parts);
    }
  }

  /** The components a recorded action was keyed with. */
  async recordedComponents(id: string): Promise<KeyComponents | null> {
    const rec = this.records.get(id);
    if (!rec) return null;
    const parts = await this.#parts(rec.taskHash);
    const comps: KeyComponents = {
      version: parts?.version ?? "?",
      source: parts?.source ?? "?",
      config: parts?.config ?? "?",
      inputs: rec.inputs,
    };
    if (rec.params !== undefined) comps.params = rec.params;
    return comps;
  }

  async #parts(hash: string): Promise<TaskComponents | null> {
    if (!this.#partsCache.has(hash)) {
      this.#partsCache.set(hash, await this.r.o.records.taskComponents(this.task.name, hash));
    }
    return this.#partsCache.get(hash)!;
  }

  finished(): Promise<void> {
    return this.#finished;
  }

  taskInputs(): Record<string, string> {
    return this.#taskInputs;
  }

  summary(): TaskSummary {
    return {
      status: this.status,
      counts: this.counts,
      reason: this.reason,
      keys: this.keys,
      components: this.components,
      records: this.records,
      stale: this.stale,
      failures: this.failed,
      slice: this.slice,
      recordedComponents: (id) => this.recordedComponents(id),
    };
  }

  subscribe(listener: (id: string, p: Produced) => void): void {
    for (const [id, p] of this.done) listener(id, p);
    this.#listeners.push(listener);
  }

  dep(name: string): TaskState {
    return this.r.states.get(name)!;
  }

  async drive(): Promise<void> {
    const { reporter } = this.r.o;
    const task = this.task;
    try {
      const flowDeps = task.kind === "each" && !task.items
        ? task.deps.filter((d) => this.dep(d).task.kind === "each")
        : [];
      const waitFor = task.deps.filter((d) => !flowDeps.includes(d));
      await Promise.all(waitFor.map((d) => this.dep(d).finished()));
      // A streaming task also needs its per-item upstream alive: a blocked or failed one
      // delivers nothing, and an interruption ends it.
      for (const d of task.deps) {
        if (!waitFor.includes(d)) continue;
        const s = this.dep(d);
        // A per-item task whose final check failed still hands on the items it finished.
        const usable = s.task.kind === "each" && s.status === "failed" && s.done.size > 0;
        if ((s.status === "failed" && !usable) || s.status === "blocked") {
          return this.#end("blocked", `upstream task "${d}" ${s.status}`);
        }
      }
      if (this.r.o.signal.aborted) return this.#end("interrupted");
      reporter.emit({ event: "task-start", task: task.name });
      if (task.kind === "aggregate") await this.#driveAggregate(task);
      else await this.#driveEach(task, flowDeps);
      this.#end(this.r.o.signal.aborted ? "interrupted" : this.status, this.reason);
    } catch (e) {
      this.#end(this.r.o.signal.aborted ? "interrupted" : "failed", errorText(e));
    }
  }

  #end(status: TaskStatus, reason?: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.status = status;
    this.reason = reason;
    this.counts.final = true;
    this.r.o.reporter.emit({
      event: "task-end",
      task: this.task.name,
      status,
      counts: { ...this.counts },
      reason,
      wouldRun: this.r.o.dryRun ? this.#staleSummary() : undefined,
    });
    this.#resolveFinished();
  }

  #staleSummary(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const reasons of this.stale.values()) {
      for (const reason of reasons) out[reason.text] = (out[reason.text] ?? 0) + 1;
    }
    return out;
  }

  // ---- keys and cache ----

  components_(inputs: Record<string, string>, paramsHash: string | undefined): KeyComponents {
    const comps: KeyComponents = {
      version: this.task.version,
      source: this.#source,
      config: this.sliceHash,
      inputs,
    };
    if (paramsHash !== undefined) comps.params = paramsHash;
    return comps;
  }

  keyOf(comps: KeyComponents): string {
    return actionKey(this.#prefix, comps.inputs, comps.params);
  }

  /** Returns the cached output for this item and key, or null (recording why in a dry run). */
  async lookup(id: string, key: string, comps: KeyComponents): Promise<Produced | null> {
    const rec = this.records.get(id);
    if (!this.#force) {
      if (rec && rec.key === key) return this.#produced(rec, true);
      const old = this.olds.get(id)?.find((o) => o.key === key);
      if (old && await this.#objectsPresent(old)) {
        if (!this.r.o.dryRun) {
          if (rec) this.r.writer.set(KEYS.superseded(this.task.name, id, this.r.runId), rec);
          this.r.writer.set(KEYS.action(this.task.name, id), old);
          this.records.set(id, old);
        }
        return this.#produced(old, true);
      }
    }
    if (this.r.o.dryRun) this.stale.set(id, await this.reasons(id, comps));
    return null;
  }

  #produced(rec: ActionRecord, remember: boolean): Produced {
    const out: Output = { objects: rec.objects, meta: rec.meta };
    // Flowing items carry their digest; only outputs an items() function may pick need lookup.
    if (remember) this.r.remember(out, rec.digest);
    return { out, digest: rec.digest };
  }

  async #objectsPresent(rec: ActionRecord): Promise<boolean> {
    for (const d of Object.values(rec.objects)) {
      if (!(await this.r.o.store.has(d))) return false;
    }
    return true;
  }

  /** Why an item's recorded action does not match the current components. */
  async reasons(id: string, comps: KeyComponents): Promise<StaleReason[]> {
    if (this.#force) return [{ kind: "forced", text: "--force" }];
    const rec = this.records.get(id);
    if (!rec) {
      const fail = this.priorFailures.get(id);
      return fail
        ? [{ kind: "failed", text: `failed before: ${fail.reason}` }]
        : [{ kind: "new", text: "never ran" }];
    }
    const out: StaleReason[] = [];
    const was = await this.#parts(rec.taskHash);
    if (!was) {
      out.push({ kind: "version", text: "recorded with components that are no longer known" });
    } else {
      if (was.version !== comps.version) {
        out.push({ kind: "version", text: `version ${was.version} → ${comps.version}` });
      }
      if (was.source !== comps.source) {
        out.push({ kind: "source", text: `source file ${fileName(this.task.source)} changed` });
      }
      if (was.config !== comps.config) {
        const before = await this.r.o.records.configSlice(this.task.name, was.config);
        if (!before) {
          out.push({ kind: "config", text: "config changed (previous values not recorded)" });
        } else {
          for (const d of diffSlices(before, this.slice)) {
            out.push({
              kind: "config",
              text: `config ${d.field}: ${show(d.before)} → ${show(d.after)}`,
            });
          }
        }
      }
    }
    const names = new Set([...Object.keys(rec.inputs), ...Object.keys(comps.inputs)]);
    for (const name of [...names].sort()) {
      const before = rec.inputs[name];
      const after = comps.inputs[name];
      if (before === after) continue;
      const text = after?.startsWith(PENDING)
        ? `input ${name} will change (${name} would run first)`
        : before === undefined
        ? `new input ${name}`
        : after === undefined
        ? `input ${name} removed`
        : `input ${name} changed ${before.slice(0, 12)} → ${after.slice(0, 12)}`;
      out.push({ kind: "inputs", text });
    }
    if ((rec.params ?? "") !== (comps.params ?? "")) {
      out.push({ kind: "params", text: "item parameters changed" });
    }
    return out;
  }

  // ---- aggregate ----

  async #driveAggregate(task: AggregateTask): Promise<void> {
    const inputs: Record<string, string> = {};
    for (const d of task.deps) {
      const s = this.dep(d);
      if (s.task.kind === "aggregate") {
        inputs[d] = s.done.get(AGGREGATE_ITEM)!.digest;
        continue;
      }
      if ([...s.done.values()].some((p) => p.digest.startsWith(PENDING))) {
        inputs[d] = PENDING + d;
        continue;
      }
      const items = [...s.done].map(([id, p]) => [id, p.digest]);
      items.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
      const fails = [...this.r.upstream().failures(d)].map(([id, f]) => [id, f.task, f.reason]);
      fails.sort((a, b) => a[0] < b[0] ? -1 : 1);
      inputs[d] = sha256Hex(canonicalJson({ items, fails }));
    }
    this.counts.total = 1;
    const fingerprint = task.fingerprint ? await task.fingerprint(this.ctx) : undefined;
    const comps = this.components_(
      inputs,
      fingerprint === undefined ? undefined : sha256Hex(canonicalJson(fingerprint)),
    );
    const key = this.keyOf(comps);
    this.keys.set(AGGREGATE_ITEM, key);
    this.components.set(AGGREGATE_ITEM, comps);
    const hit = await this.lookup(AGGREGATE_ITEM, key, comps);
    if (hit) {
      this.counts.cached = 1;
      if (task.publish && !this.r.o.dryRun) {
        // The facts of the run that built this output, so the same files are published again.
        const built = await this.r.o.records.kv.get<RunFacts>(KEYS.runFacts(task.name, key));
        await task.publish(this.ctx, hit.out, built.value);
      }
      this.#produce(AGGREGATE_ITEM, hit);
      return;
    }
    if (this.r.o.dryRun) {
      this.#producePending(AGGREGATE_ITEM, key);
      return;
    }
    const work: Work = { item: { id: AGGREGATE_ITEM, inputs: {} }, key, comps, attempts: 0 };
    const started = performance.now();
    try {
      const ctx = { ...this.ctx, lookupAlias: (name: string) => this.r.aliases.lookup(name) };
      const out = await this.#withRetry(work, () => task.run(ctx, this.r.upstream()));
      if (task.publish) {
        const facts = this.r.facts.snapshot(task.name);
        this.r.writer.set(KEYS.runFacts(task.name, key), facts);
        await task.publish(this.ctx, out, facts);
      }
      await this.#record(work, out, performance.now() - started);
    } catch (e) {
      if (this.r.o.signal.aborted) throw e;
      this.#recordFailure(work, e, performance.now() - started);
      throw e;
    }
  }

  // ---- per item ----

  async #driveEach(task: EachTask, flowDeps: string[]): Promise<void> {
    const { limit } = this.r.o;
    const executor = this.r.o.executor;
    const pool = executor?.tasks.includes(task.name) && !this.r.o.dryRun
      ? new RemotePool(this, task, executor, this.#taskInputs)
      : new WorkPool(this, task);
    // A task that lists its own items picks its inputs; one that follows its upstream items
    // depends on its aggregate upstream tasks as a whole.
    const aggregateInputs: Record<string, string> = {};
    for (const d of task.items ? [] : task.deps) {
      if (this.dep(d).task.kind === "aggregate") {
        aggregateInputs[d] = this.dep(d).done.get(AGGREGATE_ITEM)!.digest;
      }
    }
    if (task.prepare) {
      // Task-level inputs (models) join every key. A plan must not fetch models, so it uses
      // the inputs the last real run recorded for the same config slice.
      const prepKey = KEYS.files(task.name, this.sliceHash);
      if (this.r.o.dryRun) {
        const recorded = await this.r.o.records.kv.get<Record<string, string>>(prepKey);
        this.#taskInputs = recorded.value ?? { prepare: PENDING + "prepare" };
      } else {
        const { inputs = {}, state } = await task.prepare(this.ctx);
        this.#taskInputs = inputs;
        pool.state = state;
        if (pool instanceof RemotePool) pool.taskInputs = inputs;
        this.r.writer.set(prepKey, inputs);
      }
    }

    const consider = async (item: Item, digests?: Record<string, string>) => {
      const inputs: Record<string, string> = { ...aggregateInputs, ...this.#taskInputs };
      if (digests) Object.assign(inputs, digests);
      else {
        for (const [name, out] of Object.entries(item.inputs)) inputs[name] = this.r.digestOf(out);
      }
      const paramsHash = item.params === undefined
        ? undefined
        : sha256Hex(canonicalJson(item.params));
      this.counts.total++;
      this.expected.push(item.id);
      const rec = this.records.get(item.id);
      // The common case of a no-op run: same task-wide components, same inputs, same params.
      if (
        rec && !this.#force && rec.taskHash === this.#prefix && rec.params === paramsHash &&
        sameInputs(rec.inputs, inputs)
      ) {
        this.keys.set(item.id, rec.key);
        this.counts.cached++;
        this.#produce(item.id, this.#produced(rec, !digests));
        return;
      }
      const comps = this.components_(inputs, paramsHash);
      const key = this.keyOf(comps);
      this.keys.set(item.id, key);
      this.components.set(item.id, comps);
      const hit = await this.lookup(item.id, key, comps);
      if (hit) {
        this.counts.cached++;
        this.#produce(item.id, hit);
      } else if (this.r.o.dryRun) {
        this.#producePending(item.id, key);
      } else {
        pool.add({ item, key, comps, attempts: 0 });
      }
    };

    if (task.items && this.r.o.dryRun) {
      // Items cannot be listed from outputs that do not exist yet.
      const pending = task.deps.find((d) =>
        [...this.dep(d).done.values()].some((p) => p.digest.startsWith(PENDING))
      );
      if (pending) {
        this.stale.set(AGGREGATE_ITEM, [{
          kind: "inputs",
          text: `all items (${pending} would run first)`,
        }]);
        pool.close();
        await pool.drained();
        await this.#summarize(task, null, undefined);
        return;
      }
    }
    const listed: Item[] = [];
    if (task.items) {
      let specs = await task.items(this.ctx, this.r.upstream());
      if (limit !== undefined) specs = specs.slice(0, limit);
      const seen = new Set<string>();
      for (const spec of specs) {
        if (seen.has(spec.id)) throw new Error(`item id "${spec.id}" is listed twice`);
        seen.add(spec.id);
        const item = {
          id: spec.id,
          inputs: spec.inputs ?? {},
          params: spec.params,
          extra: spec.extra,
        };
        if (task.summarize) listed.push(item);
        await consider(item);
      }
      pool.close();
      // Every item is known now: progress can show a total and an ETA.
      this.counts.final = true;
    } else if (flowDeps.length === 0) {
      throw new Error(
        `per-item task "${task.name}" reads no per-item task and has no items() to list its items`,
      );
    } else {
      // Items flow: an item is ready once every per-item upstream task has produced it.
      const arrived = new Map<
        string,
        { outs: Record<string, Output>; digests: Record<string, string> }
      >();
      const chain: Promise<void>[] = [];
      let pendingConsider = Promise.resolve();
      for (const d of flowDeps) {
        this.dep(d).subscribe((id, p) => {
          if (flowDeps.length === 1) {
            const item = { id, inputs: { [d]: p.out } };
            pendingConsider = pendingConsider.then(() => consider(item, { [d]: p.digest }));
            return;
          }
          const got = arrived.get(id) ?? { outs: {}, digests: {} };
          got.outs[d] = p.out;
          got.digests[d] = p.digest;
          if (Object.keys(got.outs).length === flowDeps.length) {
            arrived.delete(id);
            pendingConsider = pendingConsider.then(() =>
              consider({ id, inputs: got.outs }, got.digests)
            );
          } else {
            arrived.set(id, got);
          }
        });
      }
      chain.push(...flowDeps.map((d) => this.dep(d).finished()));
      await Promise.all(chain);
      await pendingConsider;
      for (const d of flowDeps) {
        const s = this.dep(d);
        if (s.status === "blocked" || (s.status === "failed" && s.done.size === 0)) {
          pool.close();
          await pool.drained();
          return this.#end("blocked", `upstream task "${d}" ${s.status}`);
        }
      }
      pool.close();
      // Every item is known now: progress can show a total and an ETA.
      this.counts.final = true;
    }
    await pool.drained();
    await this.#summarize(task, task.items ? listed : null, pool.state);
    if (task.teardown && pool.state !== undefined) await task.teardown(pool.state);
    if (task.finish && !this.r.o.dryRun && !this.r.o.signal.aborted) {
      const done = new Map<string, Output>();
      for (const [id, p] of this.done) done.set(id, p.out);
      const expected = flowDeps.length ? this.dep(flowDeps[0]).expected : this.expected;
      await task.finish(this.ctx, { done, expected, failed: this.failed });
    }
  }

  async #summarize(task: EachTask, items: Item[] | null, state: unknown): Promise<void> {
    if (!task.summarize || this.r.o.summaries === false || this.r.o.signal.aborted) return;
    const done = new Map<string, Output>();
    for (const [id, p] of this.done) if (!p.digest.startsWith(PENDING)) done.set(id, p.out);
    await task.summarize(
      { ...this.ctx, lookupAlias: (name: string) => this.r.aliases.lookup(name) },
      {
        items,
        done,
        failed: this.failed,
        dryRun: this.r.o.dryRun ?? false,
        upstream: this.r.upstream(),
      },
      state,
    );
  }

  #produce(id: string, p: Produced): void {
    this.done.set(id, p);
    for (const l of this.#listeners) l(id, p);
  }

  #producePending(id: string, key: string): void {
    const out: Output = { objects: {}, meta: null };
    const digest = PENDING + key;
    this.r.remember(out, digest);
    this.#produce(id, { out, digest });
  }

  // ---- execution ----

  itemContext(work: Work): ItemContext<unknown> {
    return itemContext(this.ctx, this.task.name, work, (name) => this.r.aliases.lookup(name));
  }

  async runItem(work: Work, state: unknown): Promise<void> {
    const task = this.task as EachTask;
    const started = performance.now();
    try {
      const out = await this.#withRetry(
        work,
        () => task.run!(this.itemContext(work), work.item, state),
      );
      await this.#record(work, out, performance.now() - started);
    } catch (e) {
      if (this.r.o.signal.aborted && isAbort(e)) return;
      this.#recordFailure(work, e, performance.now() - started);
    }
  }

  #withRetry<T>(work: Work, fn: () => Promise<T>): Promise<T> {
    return withRetry(
      this.retryPolicy(),
      work,
      fn,
      this.r.o.signal,
      (_attempt, delayMs, e) => this.onRetry(work, e, delayMs),
    );
  }

  onRetry(work: Work, e: unknown, delayMs: number): void {
    this.r.o.reporter.emit({
      event: "retry",
      task: this.task.name,
      item: work.item.id,
      attempt: work.attempts,
      delayMs: Math.round(delayMs),
      reason: errorText(e),
    });
  }

  async #record(work: Work, result: ActionResult, ms: number): Promise<void> {
    const { id } = work.item;
    const out: Output = { objects: result.objects, meta: result.meta };
    const digest = outputDigest(out);
    this.r.remember(out, digest);
    const rec: ActionRecord = {
      key: work.key,
      taskHash: this.#prefix,
      inputs: work.comps.inputs,
      objects: out.objects,
      meta: out.meta,
      digest,
      run: this.r.runId,
      ms: Math.round(ms),
    };
    if (work.comps.params !== undefined) rec.params = work.comps.params;
    for (const d of Object.values(out.objects)) {
      if (!(await this.r.o.store.has(d))) {
        throw new Error(`task "${this.task.name}" returned object ${d} that is not in the store`);
      }
    }
    const prev = this.records.get(id);
    if (prev && prev.key !== work.key) {
      this.r.writer.set(KEYS.superseded(this.task.name, id, this.r.runId), prev);
    }
    this.r.writer.set(KEYS.action(this.task.name, id), rec);
    for (const [name, digest] of Object.entries(result.aliases ?? {})) {
      if (!Object.values(out.objects).includes(digest)) {
        throw new Error(
          `task "${this.task.name}" named alias ${name} for object ${digest}, which is not one of its outputs`,
        );
      }
      this.r.aliases.add(name, digest);
      this.r.writer.set(KEYS.alias(name), { digest });
    }
    if (this.priorFailures.has(id)) this.r.writer.delete(KEYS.failure(this.task.name, id));
    this.records.set(id, rec);
    if (work.checkpointed) {
      this.r.checkpointDone(checkpointPath(this.r.o.store.root, this.task.name, work.key));
    }
    this.counts.ran++;
    if (id !== AGGREGATE_ITEM) {
      this.r.o.reporter.emit({
        event: "item",
        task: this.task.name,
        item: id,
        status: "ran",
        ms: Math.round(ms),
      });
    }
    this.r.o.reporter.progress(this.task.name, this.counts);
    this.#produce(id, { out, digest });
  }

  #recordFailure(work: Work, e: unknown, ms: number): void {
    const reason = errorText(e);
    const rec: FailureRecord = {
      key: work.key,
      reason: reason.slice(0, 4000),
      kind: (e as Error)?.name ?? "Error",
      attempts: work.attempts,
      run: this.r.runId,
      at: new Date().toISOString(),
    };
    this.r.writer.set(KEYS.failure(this.task.name, work.item.id), rec);
    this.failed.set(work.item.id, reason);
    this.counts.failed++;
    this.r.o.reporter.emit({
      event: "item",
      task: this.task.name,
      item: work.item.id,
      status: "failed",
      ms: Math.round(ms),
      reason,
    });
    this.r.o.reporter.progress(this.task.name, this.counts);
  }

  recordFailure(work: Work, e: unknown, ms: number): void {
    this.#recordFailure(work, e, ms);
  }

  record(work: Work, out: ActionResult, ms: number): Promise<void> {
    return this.#record(work, out, ms);
  }

  retryPolicy(): RetryPolicy {
    return { ...DEFAULT_RETRY, ...this.task.retry?.(this.ctx.config) };
  }
}

async function readSource(task: Task): Promise<string> {
  const url = new URL(task.source);
  if (url.protocol !== "file:") {
    throw new Error(
      `task "${task.name}": expected a file: URL for its source, found ${task.source}`,
    );
  }
  return sha256Hex(await Deno.readFile(url));
}

/** Removes a finished action's checkpoint reference and the object it named. */
async function removeCheckpoint(store: ObjectStore, path: string): Promise<void> {
  const digest = (await Deno.readTextFile(path).catch(() => "")).trim();
  await Deno.remove(path).catch(() => {});
  if (/^[0-9a-f]{64}$/.test(digest)) await store.remove(digest);
}

function sameInputs(a: Record<string, string>, b: Record<string, string>): boolean {
  let n = 0;
  for (const key in b) {
    if (a[key] !== b[key]) return false;
    n++;
  }
  return Object.keys(a).length === n;
}

function fileName(url: string): string {
  return url.slice(url.lastIndexOf("/") + 1);
}

function show(value: Json | undefined): string {
  return value === undefined ? "(unset)" : JSON.stringify(value);
}

/** The message of an error, with its cause. */
export function errorText(e: unknown): string {
  if (e instanceof Error) {
    const cause = e.cause instanceof Error && !e.message.includes(e.cause.message)
      ? ` (${e.cause.message})`
      : "";
    return `${e.message}${cause}`;
  }
  return String(e);
}

/**
 * Hands a task's actions to an executor as one wave once all its items are known, and records
 * the results as the executor imports them.
 */
class RemotePool {
  readonly host: TaskState;
  readonly task: EachTask;
  readonly executor: Executor;
  taskInputs: Record<string, string>;
  state: unknown;
  readonly #works: Work[] = [];

  constructor(
    host: TaskState,
    task: EachTask,
    executor: Executor,
    taskInputs: Record<string, string>,
  ) {
    this.host = host;
    this.task = task;
    this.executor = executor;
    this.taskInputs = taskInputs;
  }

  add(work: Work): void {
    this.#works.push(work);
  }

  close(): void {}

  async drained(): Promise<void> {
    const works = this.#works.splice(0);
    if (works.length === 0 || this.host.signal.aborted) return;
    const { store, config } = this.host.r.o;
    const list: WorkList = {
      format: "latentforge-work/1",
      task: this.task.name,
      prefix: this.host.prefix(),
      config,
      taskInputs: this.taskInputs,
      works: works.map((w) => ({
        id: w.item.id,
        key: w.key,
        comps: w.comps,
        inputs: w.item.inputs,
        params: w.item.params,
        extra: w.item.extra,
      })),
    };
    const byKey = new Map(works.map((w) => [w.key, w]));
    const seen = new Set<string>();
    const importResults = async () => {
      for (const result of await readResults(store, this.task.name, byKey.keys(), seen)) {
        seen.add(result.key);
        const work = byKey.get(result.key)!;
        if (result.output) await this.host.record(work, result.output, result.ms);
        else {
          const e = new Error(`${result.error?.message ?? "no error text"} (on ${result.host})`);
          e.name = result.error?.name ?? "Error";
          this.host.recordFailure(work, e, result.ms);
        }
      }
      return [...byKey.values()].filter((w) => !seen.has(w.key)).map((w) => w.item.id);
    };
    // Results of an earlier, interrupted wave with the same actions need no recomputing;
    // failures are retried, as they would be locally.
    for (const r of await readResults(store, this.task.name, byKey.keys(), new Set())) {
      if (!r.output) {
        await Deno.remove(resultPath(store.root, this.task.name, r.key)).catch(() => {});
      }
    }
    const missing = new Set(await importResults());
    list.works = list.works.filter((w) => missing.has(w.id));
    if (list.works.length === 0) return;
    const listDigest = await store.putJson(list);
    await store.syncDirs();
    await this.executor.runWave({
      task: this.task.name,
      listDigest,
      list,
      store,
      signal: this.host.signal,
      log: this.host.ctx.log,
      importResults,
    });
    const left = await importResults();
    if (this.host.signal.aborted) return;
    const byId = new Map(works.map((w) => [w.item.id, w]));
    for (const id of left) {
      this.host.recordFailure(
        byId.get(id)!,
        new Error(`${this.executor.name} returned no result for this item`),
        0,
      );
    }
  }
}

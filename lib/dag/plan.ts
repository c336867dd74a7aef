/**
 * Running (or planning) the targets: one driver per task of their closure, all started at
 * once so items flow from task to task without stage barriers; then the run record. A plan
 * (`dryRun`) is the same walk with nothing executed: `--dry-run`, `status` and `explain` read
 * its result.
 *
 * @module
 */
import { join } from "node:path";
import { ObjectAliases } from "../store/aliases.ts";
import type { ObjectStore } from "../store/objects.ts";
import {
  type ActionRecord,
  AGGREGATE_ITEM,
  type KeyComponents,
  KEYS,
  type Output,
  type RecordWriter,
} from "../store/records.ts";
import { outputDigest } from "./action_key.ts";
import type { Json } from "../store/canonical.ts";
import { UpstreamError } from "./errors.ts";
import type { TaskCounts, TaskStatus } from "./events.ts";
import type { RunContext, RunOptions } from "./run_context.ts";
import { declaredFiles, observedReporter, RunFactsCollector } from "./run_facts.ts";
import { type SystemicFault, systemicFault } from "../store/systemic.ts";
import { SpaceCheck } from "../store/space.ts";
import type { Upstream } from "./task.ts";
import { type ItemPlan, TaskDriver } from "./task_driver.ts";
import type { KeyLookup } from "./item_join.ts";
import { readDirOrNull, readTextOrNull, removeIfPresent } from "../base/fs.ts";

export type { RunOptions };

/** What a run did, or a plan would do. */
export interface RunResult {
  run: number;
  status: "ok" | "failed" | "interrupted";
  exitCode: number;
  tasks: Map<string, TaskSummary>;
  /** The fault of the machine or the store that stopped the run (exit code 3). */
  fault?: SystemicFault;
}

/** One task's part of a run or plan. */
export interface TaskSummary {
  status: TaskStatus;
  counts: TaskCounts;
  reason?: string;
  /** Action keys of the items, where known. */
  keys: KeyLookup;
  /** Items that are not cached and why (a plan). */
  plans: Map<string, ItemPlan>;
  /** Set when the plan cannot list the task's items: they all may run. */
  unlisted?: string;
  /** Items in the order they were listed or arrived. */
  items: string[];
  /** Items whose action ran (successfully or not) in this run. */
  executed: string[];
  /** Current action records by item. */
  records: Map<string, ActionRecord>;
  failures: Map<string, string>;
  slice: Record<string, Json>;
  /** The key components of an item now (those of its record when it is cached). */
  components(id: string): KeyComponents | null;
  /** The components the recorded action of an item was keyed with. */
  recordedComponents(id: string): Promise<KeyComponents | null>;
}

/**
 * Runs (or, with `dryRun`, plans) the targets.
 *
 * @example
 * ```ts
 * import { TaskGraph } from "./graph.ts";
 * import { ObjectStore } from "../store/objects.ts";
 * import { openRecords } from "../store/records.ts";
 * import type { Reporter } from "./events.ts";
 * import type { Task } from "./task.ts";
 *
 * declare const tasks: Task[];
 * const reporter: Reporter = { emit() {}, progress() {}, close() {} };
 * const result = await runPipeline({
 *   graph: new TaskGraph(tasks), targets: ["package"], config: {},
 *   store: new ObjectStore("cache"), records: await openRecords("cache"), reporter,
 *   signal: new AbortController().signal, dryRun: true,
 * });
 * ```
 */
export async function runPipeline(options: RunOptions): Promise<RunResult> {
  return await new Runner(options).run();
}

/**
 * Where an output object keeps the digest its dependants key on: a symbol-keyed property, which
 * JSON, canonical JSON and structured cloning leave out (cheaper than a side table at 70,000
 * items per task).
 */
const DIGEST = Symbol("output digest");

class Runner implements RunContext {
  readonly options: RunOptions;
  readonly runId = Date.now();
  readonly writer: RecordWriter;
  readonly aliases: ObjectAliases;
  /** What published outputs state about this run (see run_facts.ts). */
  readonly facts: RunFactsCollector;
  /** The machine's fault that stopped the run (a full disk …), if one did. */
  systemic?: SystemicFault;
  readonly space: SpaceCheck;
  readonly #stop = new AbortController();
  readonly drivers = new Map<string, TaskDriver>();
  readonly #checkpointsDone: string[] = [];

  constructor(options: RunOptions) {
    const aggregates = options.graph.order.filter((t) => t.kind === "aggregate");
    this.facts = new RunFactsCollector({
      aggregates: aggregates.map((t) => t.name),
      inputs: declaredFiles(options.graph.closure(options.targets), options.config),
    });
    // A systemic fault stops the run the way an interrupt does.
    this.options = {
      ...options,
      reporter: observedReporter(options.reporter, this.facts),
      signal: AbortSignal.any([options.signal, this.#stop.signal]),
    };
    this.writer = options.records.writer(() => options.store.syncDirs(), (e) => this.fault(e));
    this.space = new SpaceCheck(
      options.store,
      (message) =>
        options.reporter.emit({ event: "log", task: "run", message: `warning: ${message}` }),
    );
    this.aliases = new ObjectAliases(options.records, options.store);
  }

  async run(): Promise<RunResult> {
    const { graph, targets, reporter, dryRun = false, records } = this.options;
    const closure = graph.closure(targets);
    const started = performance.now();
    const startedAt = new Date().toISOString();
    reporter.emit({
      event: "run-start",
      run: this.runId,
      targets,
      tasks: closure.map((t) => t.name),
      dryRun,
    });
    if (!dryRun) {
      await records.putRun({
        id: this.runId,
        started: startedAt,
        status: "running",
        targets,
        pid: Deno.pid,
      });
    }
    for (const task of closure) this.drivers.set(task.name, new TaskDriver(this, task));
    await Promise.all([...this.drivers.values()].map((d) => d.load()));
    await Promise.all([...this.drivers.values()].map((d) => d.drive()));
    try {
      await this.writer.flush();
    } catch (e) {
      if (!this.fault(e)) throw e;
    }
    if (!dryRun && !this.systemic) await this.#removeCheckpoints();

    const interrupted = this.options.signal.aborted && !this.systemic;
    const failed = [...this.drivers.values()].some((d) => d.status !== "ok" || d.failed.size > 0);
    const status = interrupted ? "interrupted" : failed || this.systemic ? "failed" : "ok";
    const exitCode = this.systemic ? 3 : interrupted ? 130 : failed ? 1 : 0;
    // After a fault of the disk nothing more is written: the next run starts from the records.
    if (!dryRun && !this.systemic) {
      const counts: Record<string, { ran: number; cached: number; failed: number; total: number }> =
        {};
      for (const [name, { counts: c }] of this.drivers) {
        counts[name] = { ran: c.ran, cached: c.cached, failed: c.failed, total: c.total };
      }
      const finished = new Date().toISOString();
      const atomic = records.kv.atomic().set(KEYS.run(this.runId), {
        id: this.runId,
        started: startedAt,
        finished,
        status,
        targets,
        pid: Deno.pid,
        counts,
      });
      for (const [name, d] of this.drivers) {
        if (d.counts.ran > 0 || d.counts.failed > 0) {
          atomic.set(KEYS.lastRun(name), { lastRun: finished, run: this.runId });
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
    for (const [name, d] of this.drivers) tasks.set(name, summary(d));
    return { run: this.runId, status, exitCode, tasks, fault: this.systemic };
  }

  fault(e: unknown): boolean {
    const f = systemicFault(e, { cacheDir: this.options.store.root });
    if (!f) return false;
    this.systemic ??= f;
    this.#stop.abort();
    return true;
  }

  /** Checkpoints of finished actions: this run's, and those an earlier killed run left. */
  async #removeCheckpoints(): Promise<void> {
    const { store } = this.options;
    for (const path of this.#checkpointsDone) await removeCheckpoint(store, path);
    for (const d of this.drivers.values()) {
      const dir = join(store.root, "checkpoints", d.name);
      const entries = await readDirOrNull(dir) ?? [];
      // Only tasks that keep checkpoints pay for the set of their keys.
      if (entries.length === 0) continue;
      const keys = new Set<string>();
      for (const r of d.records.values()) keys.add(r.key);
      for (const e of entries) {
        if (keys.has(e.name)) await removeCheckpoint(store, join(dir, e.name));
        // A reference half-written when a run was killed (this run holds the lease).
        else if (e.name.includes(".tmp-")) await removeIfPresent(join(dir, e.name));
      }
    }
  }

  driver(name: string): TaskDriver {
    const d = this.drivers.get(name);
    if (!d) throw new UpstreamError(`task "${name}" is not part of this run`);
    return d;
  }

  digestOf(out: Output): string {
    const tagged = out as Output & { [DIGEST]?: string };
    return tagged[DIGEST] ??= outputDigest(out);
  }

  remember(out: Output, digest: string): void {
    (out as Output & { [DIGEST]?: string })[DIGEST] = digest;
  }

  checkpointDone(path: string): void {
    this.#checkpointsDone.push(path);
  }

  upstream(): Upstream {
    return {
      aggregate: (name) => {
        const out = this.driver(name).done.get(AGGREGATE_ITEM)?.out;
        if (!out) throw new UpstreamError(`aggregate task "${name}" has no output`);
        return out;
      },
      items: (name) => {
        const out = new Map<string, Output>();
        for (const [id, p] of this.driver(name).done) out.set(id, p.out);
        return out;
      },
      failures: (name) => {
        const out = new Map<string, { task: string; reason: string }>();
        for (const t of this.options.graph.closure([name])) {
          for (const [id, reason] of this.drivers.get(t.name)?.failed ?? []) {
            if (!out.has(id)) out.set(id, { task: t.name, reason });
          }
        }
        return out;
      },
      keys: (name) => this.driver(name).keys,
      taskInputs: (name) => {
        const d = this.driver(name);
        const stored = Object.entries(d.files);
        return stored.length
          ? Object.fromEntries(stored.map(([n, f]) => [n, f.digest]))
          : { ...d.fileInputs };
      },
      durations: (name) => {
        const d = this.driver(name);
        const out = new Map<string, number>();
        for (const id of d.done.keys()) out.set(id, d.records.get(id)?.ms ?? 0);
        return out;
      },
    };
  }
}

function summary(d: TaskDriver): TaskSummary {
  const records = d.records;
  const recorded = async (id: string): Promise<KeyComponents | null> => {
    const rec = records.get(id);
    if (!rec) return null;
    const parts = await d.decider.facts.recordedComponents(rec.taskHash);
    const comps: KeyComponents = {
      version: parts?.version ?? "?",
      source: parts?.source ?? "?",
      config: parts?.config ?? "?",
      inputs: rec.inputs,
    };
    if (rec.params !== undefined) comps.params = rec.params;
    return comps;
  };
  return {
    status: d.status,
    counts: d.counts,
    reason: d.reason,
    keys: d.keys,
    plans: d.plans,
    unlisted: d.unlisted,
    items: d.expected,
    executed: d.executed,
    records,
    failures: d.failed,
    slice: d.slice,
    components: (id) => {
      const now = d.components.get(id);
      if (now) return now;
      const rec = records.get(id);
      return rec && d.keys.get(id) === rec.key
        ? d.decider.components(rec.inputs, rec.params)
        : null;
    },
    recordedComponents: recorded,
  };
}

/** Removes a finished action's checkpoint reference and the object it named. */
async function removeCheckpoint(store: ObjectStore, path: string): Promise<void> {
  const digest = (await readTextOrNull(path) ?? "").trim();
  await removeIfPresent(path);
  if (/^[0-9a-f]{64}$/.test(digest)) await store.remove(digest);
}

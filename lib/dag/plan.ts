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
import type { Output, RecordWriter } from "../store/records.ts";
import { outputDigest } from "./action_key.ts";
import { UpstreamError } from "./errors.ts";
import type { RunContext, RunOptions, TaskView } from "./run_context.ts";
import type { ItemPlan, RunResult, TaskSummary } from "./run_result.ts";
import { declaredFiles, observedReporter, RunFactsCollector } from "./run_facts.ts";
import { type SystemicFault, systemicFault } from "../store/systemic.ts";
import { SpaceCheck } from "../store/space.ts";
import { invalidateFrom } from "../store/invalidate.ts";
import type { Upstream } from "./task.ts";
import { TaskDriver } from "./task_driver.ts";
import { ItemTable } from "./item_table.ts";
import { FlowGate } from "./flow_gate.ts";
import { CodeReader } from "./code_identity.ts";
import { adoptionNote } from "./adoption.ts";
import { readDirOrNull, readTextOrNull, removeIfPresent } from "../base/fs.ts";

export type { ItemPlan, RunOptions, RunResult, TaskSummary };

/**
 * Runs (or, with `dryRun`, plans) the targets.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TaskGraph } from "./graph.ts";
 * import { ObjectStore } from "../store/objects.ts";
 * import { openRecords } from "../store/records.ts";
 * import type { Reporter } from "./events.ts";
 * import { aggregate } from "./task.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/hello.ts`, "export const greeting = 'hi';\n");
 * const hello = aggregate({
 *   name: "hello", deps: [], config: [], version: "1", source: `file://${dir}/hello.ts`,
 *   describe: "say hello", run: () => Promise.resolve({ objects: {}, meta: "hi" }),
 * });
 * const reporter: Reporter = { emit() {}, progress() {}, close() {} };
 * const records = await openRecords(`${dir}/cache`);
 * const go = (dryRun: boolean) => runPipeline({
 *   graph: new TaskGraph([hello]), targets: ["hello"], config: {},
 *   store: new ObjectStore(`${dir}/cache`), records, reporter,
 *   signal: new AbortController().signal, dryRun,
 * });
 * assert.equal((await go(true)).tasks.get("hello")!.plans.get("*")?.verdict, "run");
 * assert.deepEqual((await go(false)).tasks.get("hello")!.executed, ["*"]);
 * assert.equal((await go(true)).tasks.get("hello")!.plans.size, 0); // cached now
 * records.close();
 * await Deno.remove(dir, { recursive: true });
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
  readonly code: CodeReader;
  readonly #stop = new AbortController();
  readonly drivers = new Map<string, TaskDriver>();
  readonly items = new ItemTable();
  readonly gate = new FlowGate();
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
    this.code = new CodeReader(options.records);
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
    // Per-item outputs an aggregate reads as a whole are hashed as they flow.
    for (const task of closure) {
      if (task.kind !== "aggregate") continue;
      for (const dep of task.deps) {
        const d = this.drivers.get(dep);
        if (d?.task.kind === "each") d.state.hashWhole();
      }
    }
    await Promise.all([...this.drivers.values()].map((d) => d.load()));
    await this.#rememberModules();
    await Promise.all([...this.drivers.values()].map((d) => d.drive()));
    // Old records are adopted as the items reach them.
    const adopted = new Map(
      [...this.drivers].filter(([, d]) => d.adopted > 0).map(([n, d]) => [n, d.adopted]),
    );
    if (adopted.size > 0) {
      reporter.emit({ event: "log", task: "run", message: adoptionNote(adopted) });
    }
    try {
      await this.writer.flush();
    } catch (e) {
      if (!this.fault(e)) throw e;
    }
    if (!dryRun && !this.systemic) {
      await this.#removeCheckpoints();
      await this.#forgetDamaged();
    }

    const interrupted = this.options.signal.aborted && !this.systemic;
    const failed = [...this.drivers.values()].some((d) =>
      d.state.status !== "ok" || d.state.failed.size > 0
    );
    const status = interrupted ? "interrupted" : failed || this.systemic ? "failed" : "ok";
    const exitCode = this.systemic ? 3 : interrupted ? 130 : failed ? 1 : 0;
    // After a fault of the disk nothing more is written: the next run starts from the records.
    if (!dryRun && !this.systemic) await this.#finishRecord(startedAt, status);
    reporter.emit({
      event: "run-end",
      run: this.runId,
      status,
      exitCode,
      seconds: (performance.now() - started) / 1000,
    });
    const tasks = new Map<string, TaskSummary>();
    for (const [name, d] of this.drivers) tasks.set(name, d.summary());
    return { run: this.runId, status, exitCode, tasks, fault: this.systemic };
  }

  /** Records how the run ended, with each task's counts. */
  async #finishRecord(started: string, status: "ok" | "failed" | "interrupted"): Promise<void> {
    const counts: Record<string, { ran: number; cached: number; failed: number; total: number }> =
      {};
    const ran: string[] = [];
    for (const [name, { state: { counts: c } }] of this.drivers) {
      counts[name] = { ran: c.ran, cached: c.cached, failed: c.failed, total: c.total };
      if (c.ran > 0 || c.failed > 0) ran.push(name);
    }
    await this.options.records.finishRun({
      id: this.runId,
      started,
      finished: new Date().toISOString(),
      status,
      targets: this.options.targets,
      pid: Deno.pid,
      counts,
    }, ran);
  }

  /** Keeps the module hashes read for the keys, so the next run parses nothing unchanged. */
  async #rememberModules(): Promise<void> {
    try {
      await this.code.remember();
    } catch (e) {
      // They are a cache of the files: a full or read-only disk costs hashing again next time
      // (a run then stops on its first record write, with the fault's message).
      if (!systemicFault(e, { cacheDir: this.options.store.root })) throw e;
    }
  }

  fault(e: unknown): boolean {
    const f = systemicFault(e, { cacheDir: this.options.store.root });
    if (!f) return false;
    this.systemic ??= f;
    this.#stop.abort();
    return true;
  }

  /**
   * Objects this run found damaged that it could not build again (read outside an action, or
   * made by an aggregate task): the records built from them are dropped, so the next run builds
   * those actions again rather than finding the damage anew.
   */
  async #forgetDamaged(): Promise<void> {
    const { store, records, graph, reporter } = this.options;
    const gone = new Set<string>();
    for (const d of store.damaged) if (!(await store.has(d))) gone.add(d);
    if (gone.size === 0) return;
    const deps = new Map(graph.order.map((t) => [t.name, t.deps]));
    const inv = await invalidateFrom(records, gone, { deps });
    const which = Object.entries(inv.byTask).map(([t, n]) => `${t} ${n}`).join(", ");
    reporter.emit({
      event: "log",
      task: "run",
      message: `${gone.size} stored object(s) were corrupt or missing and not built again in ` +
        `this run; the next run builds again the actions built from them (${
          which || "none recorded"
        })`,
    });
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
      for await (const [, r] of this.options.records.actionsInOrder(d.name)) keys.add(r.key);
      for (const e of entries) {
        if (keys.has(e.name)) await removeCheckpoint(store, join(dir, e.name));
        // A reference half-written when a run was killed (this run holds the lease).
        else if (e.name.includes(".tmp-")) await removeIfPresent(join(dir, e.name));
      }
    }
  }

  driver(name: string): TaskView {
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
        const out = this.driver(name).outcome.aggregate?.out;
        if (!out) throw new UpstreamError(`aggregate task "${name}" has no output`);
        return out;
      },
      items: (name) => this.driver(name).outputs(),
      failures: (name) => {
        const out = new Map<string, { task: string; reason: string }>();
        for (const t of this.options.graph.closure([name])) {
          for (const [id, reason] of this.drivers.get(t.name)?.state.failed ?? []) {
            if (!out.has(id)) out.set(id, { task: t.name, reason });
          }
        }
        return out;
      },
      taskInputs: (name) => this.driver(name).fileDigests(),
    };
  }
}

/** Removes a finished action's checkpoint reference and the object it named. */
async function removeCheckpoint(store: ObjectStore, path: string): Promise<void> {
  const digest = (await readTextOrNull(path) ?? "").trim();
  await removeIfPresent(path);
  if (/^[0-9a-f]{64}$/.test(digest)) await store.remove(digest);
}

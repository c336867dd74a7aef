/**
 * Running a task's actions that are not cached: prepare the task once, run each action under
 * its retry policy, record its result or failure, report it, and hand its output on. Pools
 * (local or remote) call back here; so does an aggregate task's single action.
 *
 * @module
 */
import {
  type ActionRecord,
  AGGREGATE_ITEM,
  type CodeIdentity,
  type Output,
} from "../store/records.ts";
import type { ObjectStore } from "../store/objects.ts";
import { outputDigest } from "./action_key.ts";
import { ActionRecorder } from "./action_recorder.ts";
import { errorText } from "./errors.ts";
import type { RemoteHost } from "./remote_pool.ts";
import type {
  ActionResult,
  EachTask,
  ItemContext,
  Log,
  RetryPolicy,
  StoredFile,
  Task,
  TaskContext,
} from "./task.ts";
import { isAbort } from "../base/abort.ts";
import { DEFAULT_RETRY, withRetry } from "./action_retry.ts";
import { checkpointPath, itemContext } from "./item_context.ts";
import type { PoolHost, Work } from "./pool.ts";
import type { FlowGate } from "./flow_gate.ts";
import type { RecorderHost } from "./action_recorder.ts";
import type { RunContext } from "./run_context.ts";
import type { TaskState } from "./task_state.ts";

/** What the runner needs from the task whose actions it runs. */
export interface RunnerHost extends RecorderHost {
  readonly task: Task;
  readonly ctx: TaskContext<unknown>;
  readonly run: RunContext;
  readonly state: TaskState;
  /** Takes the failure of an action whose input object is damaged, to rebuild it (true). */
  repairs(work: Work, e: unknown): boolean;
  /** The output of an action that rebuilt a damaged one, recorded (see damage_repair.ts). */
  rebuilt(id: string, p: { out: Output; digest: string }, ran: boolean): void;
}

/** Runs and records the actions of one task. */
export class ActionRunner implements PoolHost, RemoteHost {
  readonly #driver: RunnerHost;
  readonly #recorder: ActionRecorder;
  #state?: Promise<unknown>;

  constructor(driver: RunnerHost) {
    this.#driver = driver;
    this.#recorder = new ActionRecorder(driver);
  }

  get signal(): AbortSignal {
    return this.#driver.run.options.signal;
  }
  get gate(): FlowGate {
    return this.#driver.run.gate;
  }

  get concurrency(): number | undefined {
    return this.#driver.run.options.concurrency;
  }
  get ctx(): TaskContext<unknown> {
    return this.#driver.ctx;
  }
  get store(): ObjectStore {
    return this.#driver.run.options.store;
  }
  get config(): unknown {
    return this.#driver.run.options.config;
  }
  get taskHash(): string {
    return this.#driver.taskHash;
  }
  get code(): CodeIdentity {
    return this.#driver.decider.facts.code;
  }
  get files(): Record<string, StoredFile> {
    return this.#driver.ctx.files;
  }
  get log(): Log {
    return this.#driver.ctx.log;
  }

  /** The prepared state, once `prepare` has run (for teardown). */
  get state(): Promise<unknown> | undefined {
    return this.#state;
  }

  /** Releases what `prepare` opened (the task's `teardown`); the next action prepares again. */
  async release(): Promise<void> {
    const task = this.#driver.task as EachTask;
    const state = this.#state;
    this.#state = undefined;
    if (task.teardown && state) await task.teardown(await state);
  }

  prepared(): Promise<unknown> {
    const task = this.#driver.task as EachTask;
    return this.#state ??= task.prepare
      ? task.prepare(this.ctx).then((p) => p.state)
      : Promise.resolve(undefined);
  }

  itemContext(work: Work): ItemContext<unknown> {
    const d = this.#driver;
    const reporter = d.run.options.reporter;
    return itemContext(this.ctx, d.name, work, {
      lookupAlias: (name) => d.run.aliases.lookup(name),
      async announceAlias(name, digest) {
        await d.run.options.records.putAliases([[name, digest]]);
        d.run.aliases.add(name, digest);
      },
    }, (done, budget) => reporter.steps?.(d.name, work.item.id, done, budget));
  }

  async runItem(work: Work, state: unknown): Promise<void> {
    const task = this.#driver.task as EachTask;
    const started = performance.now();
    try {
      const out = await this.withRetry(
        work,
        () => task.run!(this.itemContext(work), work.item, state),
      );
      await this.record(work, out, performance.now() - started);
    } catch (e) {
      if (this.signal.aborted && isAbort(e)) return;
      this.recordFailure(work, e, performance.now() - started);
    }
  }

  /** Runs `fn` for `work` under the task's retry policy, reporting each retry. */
  withRetry<T>(work: Work, fn: () => Promise<T>): Promise<T> {
    // A full disk is not retried like a dropped connection: it stops the run at once.
    const attempt = async () => {
      try {
        return await fn();
      } catch (e) {
        this.#driver.run.fault(e);
        throw e;
      }
    };
    return withRetry(
      this.retryPolicy(),
      work,
      attempt,
      this.signal,
      (_attempt, delayMs, e) => this.onRetry(work, e, delayMs),
    );
  }

  onRetry(work: Work, e: unknown, delayMs: number): void {
    this.#driver.run.options.reporter.emit({
      event: "retry",
      task: this.#driver.name,
      item: work.item.id,
      attempt: work.attempts,
      delayMs: Math.round(delayMs),
      reason: errorText(e),
    });
  }

  async record(work: Work, result: ActionResult, ms: number): Promise<void> {
    const d = this.#driver;
    const out: Output = { objects: result.objects, meta: result.meta };
    const digest = outputDigest(result.identity ?? out);
    await this.#recorder.record(work, result, digest, ms);
    if (work.checkpointed) d.run.checkpointDone(checkpointPath(this.store.root, d.name, work.key));
    d.run.remember(out, digest);
    if (work.rebuild) d.rebuilt(work.item.id, { out, digest }, true);
    else d.state.ran(work.item.id, { out, digest });
    if (work.item.id !== AGGREGATE_ITEM) {
      d.run.options.reporter.emit({
        event: "item",
        task: d.name,
        item: work.item.id,
        status: "ran",
        ms: Math.round(ms),
      });
    }
    d.run.options.reporter.progress(d.name, d.state.counts);
  }

  recordFailure(work: Work, e: unknown, ms: number): void {
    const d = this.#driver;
    // A full disk or a read-only folder is no fault of the item: it stops the run instead.
    if (d.run.fault(e)) return;
    // Nor is an input object found damaged: what made it runs again, then this action.
    // (An action rebuilding a damaged output whose own input is damaged fails: its reader is
    // told why.)
    if (!work.rebuild && d.repairs(work, e)) return;
    const reason = errorText(e);
    this.#recorder.recordFailure(work, e, reason);
    d.state.failedItem(work.item.id, reason);
    d.run.options.reporter.emit({
      event: "item",
      task: d.name,
      item: work.item.id,
      status: "failed",
      ms: Math.round(ms),
      reason,
    });
    d.run.options.reporter.progress(d.name, d.state.counts);
  }

  /** Resolves once the records written so far are committed. */
  committed(): Promise<void> {
    return this.#driver.run.writer.flush();
  }

  /** Makes a superseded record current again (a cache hit after a revert). */
  revive(id: string, record: ActionRecord, current: ActionRecord | undefined): void {
    this.#recorder.revive(id, record, current);
  }

  retryPolicy(): RetryPolicy {
    return { ...DEFAULT_RETRY, ...this.#driver.task.retry?.(this.ctx.config) };
  }
}

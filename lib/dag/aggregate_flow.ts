/**
 * The single action of an aggregate task: its inputs are the whole outputs of the tasks it
 * reads (and its files and fingerprint); a cached output is published again, a plan notes why
 * it would run, a run runs it under the task's retry policy and publishes what it made.
 *
 * @module
 */
import { AGGREGATE_ITEM, KEYS } from "../store/records.ts";
import type { RunFacts } from "./run_facts.ts";
import type { ActionRunner } from "./action_runner.ts";
import { TaskContractError } from "./errors.ts";
import { unkeyedConfig } from "./config.ts";
import type { Pool, Work } from "./pool.ts";
import type { RunContext } from "./run_context.ts";
import type { AggregateTask, Item, TaskContext } from "./task.ts";
import type { TaskState } from "./task_state.ts";

/** What the aggregate flow needs from the task it drives. */
export interface AggregateFlowHost {
  readonly run: RunContext;
  readonly state: TaskState;
  readonly ctx: TaskContext<unknown>;
  readonly dryRun: boolean;
  readonly signal: AbortSignal;
  /** The input digests of the task's files and of `deps` as a whole. */
  wholeInputs(deps: readonly string[]): Record<string, string>;
  /** Decides one item and applies the decision (see item_flow.ts). */
  admit(item: Item, inputs: Record<string, string>, pool: Pool | null): void;
  admitted(): Promise<void>;
  /** Runs the action under the task's retry policy, and records what it did. */
  readonly actions: Pick<ActionRunner, "withRetry" | "record" | "recordFailure">;
}

/** Drives aggregate task `task` (its host `d`). */
export async function driveAggregate(d: AggregateFlowHost, task: AggregateTask): Promise<void> {
  const inputs = d.wholeInputs(task.deps);
  const fingerprint = task.fingerprint ? await task.fingerprint(d.ctx) : undefined;
  const item: Item = { id: AGGREGATE_ITEM, inputs: {}, params: fingerprint };
  d.admit(item, inputs, null);
  await d.admitted();
  const { records } = d.run.options;
  const cached = d.state.done.get(AGGREGATE_ITEM);
  if (cached) {
    if (task.publish && !d.dryRun) {
      // The facts of the run that built this output, so the same files are published again.
      const built = await records.runFacts<RunFacts>(task.name, cached.key!);
      await task.publish(d.ctx, cached.out, built);
    }
    return;
  }
  if (d.dryRun) return;
  const key = d.state.keys.get(AGGREGATE_ITEM);
  const comps = d.state.components.get(AGGREGATE_ITEM);
  if (key === undefined || comps === undefined) {
    throw new TaskContractError(`task "${task.name}" has inputs that are not known while running`);
  }
  const work: Work = { item, key, comps, attempts: 0 };
  const started = performance.now();
  try {
    // An aggregate action can reuse objects an earlier run built, found by their aliases.
    const ctx = { ...d.ctx, lookupAlias: (name: string) => d.run.aliases.lookup(name) };
    const out = await d.actions.withRetry(work, () => task.run(ctx, d.run.upstream()));
    if (task.publish) {
      const facts: RunFacts = {
        ...d.run.facts.snapshot(task.name),
        settings: unkeyedConfig(d.run.options.config, task.config),
      };
      d.run.writer.set(KEYS.runFacts(task.name, work.key), facts);
      await task.publish(d.ctx, out, facts);
    }
    await d.actions.record(work, out, performance.now() - started);
  } catch (e) {
    if (d.run.fault(e) || d.signal.aborted) throw e;
    d.actions.recordFailure(work, e, performance.now() - started);
    throw e;
  }
}

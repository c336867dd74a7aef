/**
 * The single action of an aggregate task: its inputs are the whole outputs of the tasks it
 * reads (and its files and fingerprint); a cached output is published again, a plan notes why
 * it would run, a run runs it under the task's retry policy and publishes what it made. An
 * object found damaged on the way — one it reads, or one of its own cached output — is built
 * again within the run (see damage_repair.ts), and the action decided again.
 *
 * @module
 */
import { AGGREGATE_ITEM, KEYS } from "../store/records.ts";
import type { RunFacts } from "./run_facts.ts";
import type { ActionRunner } from "./action_runner.ts";
import { TaskContractError } from "./errors.ts";
import { unkeyedConfig } from "./config.ts";
import { type DamagedObjectError, isDamagedObject, producerOf } from "./damage_repair.ts";
import type { Work } from "./pool.ts";
import type { AggregateTask, Item } from "./task.ts";
import type { FlowHost } from "./flow_host.ts";

/** What the aggregate flow needs from the task it drives. */
export interface AggregateFlowHost extends FlowHost {
  /** Drops the record of item `id` (its objects are damaged). */
  invalidate(id: string): void;
  /** What the decision of the action found recorded before it (when it runs). */
  readonly decided: Pick<Work, "prev" | "failedBefore">;
  /** Runs the action under the task's retry policy, and records what it did. */
  readonly actions: Pick<ActionRunner, "withRetry" | "record" | "recordFailure">;
}

/** How many times damaged objects are rebuilt for one aggregate action before it fails. */
const REPAIRS = 3;

/** Drives aggregate task `task` (its host `d`). */
export async function driveAggregate(d: AggregateFlowHost, task: AggregateTask): Promise<void> {
  const fingerprint = task.fingerprint ? await task.fingerprint(d.ctx) : undefined;
  const item: Item = { id: AGGREGATE_ITEM, inputs: {}, params: fingerprint };
  for (let round = 0;; round++) {
    d.admit(item, await d.wholeInputs(task.deps), null, round > 0);
    await d.admitted();
    try {
      return await decided(d, task, item);
    } catch (e) {
      if (!isDamagedObject(e) || round >= REPAIRS || d.run.fault(e) || d.signal.aborted) {
        throw e;
      }
      await repair(d, task, e);
    }
  }
}

/** Publishes the cached output, or runs the action; a plan does neither. */
async function decided(d: AggregateFlowHost, task: AggregateTask, item: Item): Promise<void> {
  const cached = d.state.aggregate;
  if (cached) {
    if (task.publish && !d.dryRun) {
      // The facts of the run that built this output, so the same files are published again.
      const built = await d.run.options.records.runFacts<RunFacts>(task.name, cached.key!);
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
  const work: Work = { item, key, comps, attempts: 0, ...d.decided };
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
    // Damaged objects are rebuilt and the action decided again (see driveAggregate).
    if (d.run.fault(e) || d.signal.aborted || isDamagedObject(e)) throw e;
    d.actions.recordFailure(work, e, performance.now() - started);
    throw e;
  }
}

/**
 * Rebuilds what made the damaged object of `e`: this task's own cached output (found damaged
 * when publishing it), or the item of an upstream task that made it; an upstream aggregate
 * task's output is only dropped (the next run builds it), and the error stands.
 */
async function repair(
  d: AggregateFlowHost,
  task: AggregateTask,
  e: DamagedObjectError,
): Promise<void> {
  const say = (what: string) =>
    d.run.options.reporter.emit({
      event: "log",
      task: task.name,
      message: `${e.message}: running again the actions built from them (${what})`,
    });
  const own = d.state.aggregate;
  if (own && Object.values(own.out.objects).includes(e.digest)) {
    say(task.name);
    d.invalidate(AGGREGATE_ITEM);
    d.state.retracted(AGGREGATE_ITEM);
    return;
  }
  const producer = await producerOf(d.run, task.deps, e.digest);
  if (producer === null || producer.task.task.kind === "aggregate") {
    if (producer) producer.task.invalidate(producer.id);
    throw e;
  }
  say(`${producer.task.task.name} ${producer.id}, then ${task.name}`);
  if ((await producer.task.rebuild(producer.id)) === null) throw e;
}

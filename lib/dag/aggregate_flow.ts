/**
 * The single action of an aggregate task: its inputs are the whole outputs of the tasks it
 * reads (and its files and fingerprint); a cached output is published again, a plan notes why
 * it would run, a run runs it under the task's retry policy and publishes what it made.
 *
 * @module
 */
import { AGGREGATE_ITEM, KEYS } from "../store/records.ts";
import type { RunFacts } from "./run_facts.ts";
import { paramsHash } from "./action_key.ts";
import { TaskContractError } from "./errors.ts";
import type { AggregateTask, Item } from "./task.ts";
import type { TaskDriver } from "./task_driver.ts";
import type { Work } from "./work_pool.ts";

/** Drives aggregate task `task` (its driver `d`). */
export async function driveAggregate(d: TaskDriver, task: AggregateTask): Promise<void> {
  const inputs: Record<string, string> = { ...d.fileInputs };
  for (const dep of task.deps) inputs[dep] = d.wholeInput(dep);
  d.counts.total = 1;
  d.expected.push(AGGREGATE_ITEM);
  const fingerprint = task.fingerprint ? await task.fingerprint(d.ctx) : undefined;
  const params = paramsHash(fingerprint);
  const decision = await d.decider.decide(AGGREGATE_ITEM, inputs, params);
  const item: Item = { id: AGGREGATE_ITEM, inputs: {} };
  if (decision.verdict === "cached") {
    d.apply(item, inputs, params, decision, null);
    const out = d.done.get(AGGREGATE_ITEM)!.out;
    if (task.publish && !d.dryRun) {
      // The facts of the run that built this output, so the same files are published again.
      const built = await d.run.options.records.kv.get<RunFacts>(
        KEYS.runFacts(task.name, decision.key),
      );
      await task.publish(d.ctx, out, built.value);
    }
    return;
  }
  if (d.dryRun) return d.apply(item, inputs, params, decision, null);
  if (decision.verdict !== "run" || decision.key === undefined) {
    throw new TaskContractError(`task "${d.name}" has inputs that are not known while running`);
  }
  const work: Work = {
    item,
    key: decision.key,
    comps: d.decider.components(inputs, params),
    attempts: 0,
  };
  d.setKey(AGGREGATE_ITEM, work.key);
  d.components.set(AGGREGATE_ITEM, work.comps);
  const started = performance.now();
  try {
    // An aggregate action can reuse objects an earlier run built, found by their aliases.
    const ctx = { ...d.ctx, lookupAlias: (name: string) => d.run.aliases.lookup(name) };
    const out = await d.actions.withRetry(work, () => task.run(ctx, d.run.upstream()));
    if (task.publish) {
      const facts = d.run.facts.snapshot(task.name);
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

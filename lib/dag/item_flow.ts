/**
 * The items of a per-item task: listed by its `items` function, or following its per-item
 * upstream tasks one for one. Each item's input digests go to the decision as it becomes
 * known; cached items flow on at once, the others go to the task's pool (a plan only notes
 * them), and once every item is known the pool is drained and the task's `finish` check runs.
 *
 * @module
 */
import type { Output } from "../store/records.ts";
import { paramsHash } from "./action_key.ts";
import { TaskContractError } from "./errors.ts";
import { joinItems } from "./item_join.ts";
import type { Pool } from "./pool.ts";
import { RemotePool } from "./remote_pool.ts";
import { isProvisional } from "./staleness.ts";
import type { EachTask, Item } from "./task.ts";
import type { TaskDriver } from "./task_driver.ts";
import { WorkPool } from "./work_pool.ts";

/**
 * Drives the items of per-item task `task` (its driver `d`); `flowDeps` are the per-item
 * tasks it follows (none when it lists its own items). Returns false when an upstream task
 * it follows ended blocked or failed without results.
 */
export async function driveItems(
  d: TaskDriver,
  task: EachTask,
  flowDeps: string[],
): Promise<boolean> {
  const { executor, limit } = d.run.options;
  const pool: Pool = executor?.tasks.includes(task.name) && !d.dryRun
    ? new RemotePool(d.actions, task, executor)
    : new WorkPool(d.actions, task);
  // A task that lists its own items picks its inputs; one that follows its upstream items
  // depends on its aggregate upstream tasks as a whole.
  const wholeInputs: Record<string, string> = { ...d.fileInputs };
  for (const dep of task.items ? [] : task.deps) {
    if (d.run.driver(dep).task.kind === "aggregate") wholeInputs[dep] = d.wholeInput(dep);
  }
  let chain = Promise.resolve();
  const whole = Object.keys(wholeInputs).length > 0;
  const consider = (item: Item, digests?: Record<string, string>) => {
    // The join hands each item a fresh object of digests: used as it is when nothing joins it.
    let inputs: Record<string, string>;
    if (digests) inputs = whole ? Object.assign({ ...wholeInputs }, digests) : digests;
    else {
      inputs = { ...wholeInputs };
      for (const [name, out] of Object.entries(item.inputs)) inputs[name] = d.run.digestOf(out);
    }
    const params = paramsHash(item.params);
    d.counts.total++;
    // The displays count items as they arrive, not only as they finish (a batch of optimize
    // takes minutes before its first image is done).
    d.run.options.reporter.progress(d.name, d.counts);
    d.expected.push(item.id);
    const decision = d.decider.decide(item.id, inputs, params);
    if (!(decision instanceof Promise)) return d.apply(item, inputs, params, decision, pool);
    chain = chain.then(async () => d.apply(item, inputs, params, await decision, pool));
  };

  const listed: Item[] = [];
  if (task.items) {
    const unknown = d.dryRun
      ? task.deps.find((dep) => {
        const s = d.run.driver(dep);
        return s.unlisted || [...s.done.values()].some((p) => isProvisional(p.digest));
      })
      : undefined;
    if (unknown) {
      // Items cannot be listed from outputs that do not exist yet.
      d.unlisted = `unknown until ${unknown} runs`;
    } else {
      let specs = await task.items(d.ctx, d.run.upstream());
      if (limit !== undefined) specs = specs.slice(0, limit);
      const seen = new Set<string>();
      for (const spec of specs) {
        if (seen.has(spec.id)) {
          throw new TaskContractError(`task "${task.name}" lists item id "${spec.id}" twice`);
        }
        seen.add(spec.id);
        const item = {
          id: spec.id,
          inputs: spec.inputs ?? {},
          params: spec.params,
          extra: spec.extra,
        };
        if (task.summarize) listed.push(item);
        consider(item);
        await chain;
      }
    }
  } else if (flowDeps.length === 0) {
    throw new TaskContractError(
      `per-item task "${task.name}" reads no per-item task and has no items() to list its items`,
    );
  } else {
    // Items flow: an item is ready once every per-item upstream task has produced it.
    const streams = flowDeps.map((dep) => d.run.driver(dep));
    joinItems(streams, (id, outs, digests) => consider({ id, inputs: outs }, digests));
    await Promise.all(streams.map((s) => s.finished()));
    await chain;
    for (const s of streams) {
      if (s.unlisted) d.unlisted ??= s.unlisted;
      if (s.status === "blocked" || (s.status === "failed" && s.done.size === 0)) {
        pool.close();
        await pool.drained();
        d.block(`upstream task "${s.name}" ${s.status}`);
        return false;
      }
    }
  }
  pool.close();
  // Every item is known now: progress can show a total and an ETA.
  d.counts.final = true;
  d.run.options.reporter.progress(d.name, d.counts);
  await pool.drained();
  await chain;
  const state = d.actions.state;
  await summarize(d, task, task.items && !d.unlisted ? listed : null, state);
  if (task.teardown && state) await task.teardown(await state);
  if (pool.fatal !== undefined) throw pool.fatal;
  if (d.failed.size > 0 && d.done.size === 0) {
    // Nothing came through: the task did not do its job, whatever its items' reasons.
    throw new AllItemsFailedError(`all ${d.failed.size} items failed`);
  }
  if (task.finish && !d.dryRun && !d.signal.aborted) {
    const done = new Map<string, Output>();
    for (const [id, p] of d.done) done.set(id, p.out);
    const expected = flowDeps.length ? d.run.driver(flowDeps[0]).expected : d.expected;
    // Failed here or upstream: an item missing for a reason of its own is that item's failure.
    const failed = new Map<string, string>();
    for (const [id, f] of d.run.upstream().failures(task.name)) failed.set(id, f.reason);
    await task.finish(d.ctx, { done, expected, failed });
  }
  return true;
}

/** Raised when every item of a task failed: the task itself did not do its job. */
export class AllItemsFailedError extends Error {
  override readonly name = "AllItemsFailedError";
}

/**
 * Lets a task sum itself up once its items are settled, in a run and in a plan alike (with
 * the outputs that exist); `status` and `explain` skip it.
 */
async function summarize(
  d: TaskDriver,
  task: EachTask,
  items: Item[] | null,
  state: Promise<unknown> | undefined,
): Promise<void> {
  if (!task.summarize || d.run.options.summaries === false || d.signal.aborted) return;
  const done = new Map<string, Output>();
  for (const [id, p] of d.done) if (!isProvisional(p.digest)) done.set(id, p.out);
  await task.summarize(
    { ...d.ctx, lookupAlias: (name: string) => d.run.aliases.lookup(name) },
    { items, done, failed: d.failed, dryRun: d.dryRun, upstream: d.run.upstream() },
    state === undefined ? undefined : await state,
  );
}

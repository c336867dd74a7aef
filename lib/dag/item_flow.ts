/**
 * The items of a per-item task: listed by its `items` function, or following its per-item
 * upstream tasks one for one. Each item's input digests go to the decision as it becomes
 * known; cached items flow on at once, the others go to the task's pool (a plan only notes
 * them), and once every item is known the pool is drained and the task's `finish` check runs.
 *
 * @module
 */
import { TaskContractError } from "./errors.ts";
import type { FollowQueue } from "./item_join.ts";
import type { Pool } from "./pool.ts";
import type { EachTask, Item } from "./task.ts";
import type { FlowHost } from "./flow_host.ts";

/** What the item flow needs from the task it drives. */
export interface ItemFlowHost extends FlowHost {
  openPool(task: EachTask): Pool;
  /** The prepared state of the task, when `prepare` ran (for its summary). */
  preparedState(): Promise<unknown> | undefined;
  /** Releases what `prepare` opened (`teardown`). */
  release(): Promise<void>;
  /** How the input digests of an item are made (for an item decided again). */
  useInputs(inputs: (item: Item) => Record<string, string>): void;
  /** Ends the task as blocked by an upstream task. */
  block(reason: string): void;
}

/**
 * Drives the items of per-item task `task` (its host `d`); `flowDeps` are the per-item tasks it
 * follows (none when it lists its own items). Returns false when an upstream task it follows
 * ended blocked or failed without results.
 */
export async function driveItems(
  d: ItemFlowHost,
  task: EachTask,
  flowDeps: string[],
  follow: FollowQueue | null,
): Promise<boolean> {
  const pool = d.openPool(task);
  // A task that lists its own items picks its inputs; one that follows its upstream items
  // depends on its aggregate upstream tasks as a whole.
  const wholeInputs = await d.wholeInputs(
    task.items ? [] : task.deps.filter((dep) => d.run.driver(dep).task.kind === "aggregate"),
  );
  const whole = Object.keys(wholeInputs).length > 0;
  const inputsOf = (item: Item) => {
    const inputs = { ...wholeInputs };
    for (const [name, out] of Object.entries(item.inputs)) inputs[name] = d.run.digestOf(out);
    return inputs;
  };
  d.useInputs(inputsOf);
  const consider = (item: Item, digests?: Record<string, string>) => {
    // The join hands each item a fresh object of digests: used as it is when nothing joins it.
    const inputs = digests
      ? (whole ? Object.assign({ ...wholeInputs }, digests) : digests)
      : inputsOf(item);
    d.admit(item, inputs, pool);
    // The displays count items as they arrive, not only as they finish (a batch of optimize
    // takes minutes before its first image is done).
    d.run.options.reporter.progress(task.name, d.state.counts);
  };

  if (task.items) await listItems(d, task, consider);
  else if (flowDeps.length === 0) {
    throw new TaskContractError(
      `per-item task "${task.name}" reads no per-item task and has no items() to list its items`,
    );
  } else if (!(await followItems(d, flowDeps, follow!, consider, pool))) return false;
  pool.close();
  // Every item is known now: progress can show a total and an ETA.
  d.state.allListed();
  d.run.options.reporter.progress(task.name, d.state.counts);
  await pool.drained();
  await d.admitted();
  const relist = task.items && !d.state.unlisted ? () => specsOf(d, task) : null;
  await summarize(d, task, relist, d.preparedState());
  await d.release();
  if (pool.fatal !== undefined) throw pool.fatal;
  const { failed, okCount } = d.state;
  if (failed.size > 0 && okCount === 0) {
    // Nothing came through: the task did not do its job, whatever its items' reasons.
    throw new AllItemsFailedError(`all ${failed.size} items failed`);
  }
  if (task.finish && !d.dryRun && !d.signal.aborted) {
    const expected = (flowDeps.length ? d.run.driver(flowDeps[0]).outcome : d.state).listedIds();
    // Failed here or upstream: an item missing for a reason of its own is that item's failure.
    const failures = new Map<string, string>();
    for (const [id, f] of d.run.upstream().failures(task.name)) failures.set(id, f.reason);
    await task.finish(d.ctx, { done: d.outputs(), expected: [...expected], failed: failures });
  }
  return true;
}

/**
 * Lists the items of a task with an `items` function (after `--limit`) and hands each to
 * `consider`; a plan that cannot list them yet says why.
 */
async function listItems(
  d: ItemFlowHost,
  task: EachTask,
  consider: (item: Item) => void,
): Promise<void> {
  const unknown = d.dryRun
    ? task.deps.find((dep) => {
      const s = d.run.driver(dep).outcome;
      return s.unlisted || s.provisional;
    })
    : undefined;
  if (unknown) {
    // Items cannot be listed from outputs that do not exist yet.
    d.state.cannotList(`unknown until ${unknown} runs`);
    return;
  }
  for await (const item of specsOf(d, task)) {
    if (d.state.knows(item.id)) {
      throw new TaskContractError(`task "${task.name}" lists item id "${item.id}" twice`);
    }
    consider(item);
    await d.admitted();
    // Backpressure: no more items while the run's pools hold enough work.
    await d.run.gate.room(d.signal);
  }
}

/** The items task `task` lists, as items, after `--limit`. */
async function* specsOf(d: ItemFlowHost, task: EachTask): AsyncGenerator<Item> {
  const { limit } = d.run.options;
  if (limit === 0) return;
  let n = 0;
  for await (const spec of await task.items!(d.ctx, d.run.upstream())) {
    yield { id: spec.id, inputs: spec.inputs ?? {}, params: spec.params, extra: spec.extra };
    if (++n === limit) return;
  }
}

/**
 * Follows the per-item tasks `flowDeps`: an item is ready once every one of them has produced
 * it. Returns false (the task blocked) when one of them ended blocked or failed without results.
 */
async function followItems(
  d: ItemFlowHost,
  flowDeps: string[],
  follow: FollowQueue,
  consider: (item: Item, digests: Record<string, string>) => void,
  pool: Pool,
): Promise<boolean> {
  const streams = flowDeps.map((dep) => d.run.driver(dep).outcome);
  follow.start((id, outs, digests) => consider({ id, inputs: outs }, digests));
  await Promise.all(streams.map((s) => s.finished()));
  await d.admitted();
  for (const s of streams) {
    if (s.unlisted) d.state.cannotList(s.unlisted);
    if (s.status === "blocked" || (s.status === "failed" && s.okCount === 0)) {
      pool.close();
      await pool.drained();
      d.block(`upstream task "${s.name}" ${s.status}`);
      return false;
    }
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
  d: ItemFlowHost,
  task: EachTask,
  items: (() => AsyncIterable<Item>) | null,
  state: Promise<unknown> | undefined,
): Promise<void> {
  if (!task.summarize || d.run.options.summaries === false || d.signal.aborted) return;
  await task.summarize(
    { ...d.ctx, lookupAlias: (name: string) => d.run.aliases.lookup(name) },
    {
      items,
      done: d.outputs(),
      failed: new Map(d.state.failed),
      dryRun: d.dryRun,
      upstream: d.run.upstream(),
    },
    state === undefined ? undefined : await state,
  );
}

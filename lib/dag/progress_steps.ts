/**
 * Progress inside long items: a batched task whose items take many steps each (optimize: up to
 * `max_steps` per image, a batch of images at once) finishes its first item only near the end,
 * so counting items says nothing for minutes and an item rate predicts nonsense. Its items
 * report their steps instead, and the displays show `3/8 images · step 412/480 · 9.1 steps/s
 * · eta 7s`.
 *
 * The step rate counts only steps computed in this run, from an item's first report (where it
 * starts: 0, or where its checkpoint left it) onwards, over the time since the task's first
 * report. The ETA divides the steps still expected by that rate: each image not yet finished is
 * expected to take as many steps as the finished ones took on average (an image that stops
 * early does not take its whole budget), the budget until one has finished.
 *
 * @module
 */
import type { TaskCounts } from "./events.ts";

/** One item's reports. */
interface ItemSteps {
  done: number;
  budget: number;
  finished: boolean;
  /** Where it started (its first report) and when. */
  startDone: number;
  startAt: number;
  /** When it finished. */
  endAt?: number;
}

/** The steps of one task, as the displays show them. */
export interface StepFigures {
  /** Steps done, a finished item counting its whole budget (so `done` reaches `total`). */
  done: number;
  /** The budgets of the items that run, summed (those not reported yet at the last budget). */
  total: number;
  /** Steps per second computed in this run; 0 before two reports. */
  rate: number;
  /** Seconds until the items that run are done, from the rate; undefined while unknown. */
  eta?: number;
}

/** What one task's items reported: the items going on, and the finished ones summed up. */
class TaskSteps {
  /** Items going on (a finished item is folded into the sums below and forgotten). */
  readonly items = new Map<string, ItemSteps>();
  /** Of the finished items: budgets, steps computed in this run, and seconds of their own. */
  finishedBudget = 0;
  finishedComputed = 0;
  finishedSeconds = 0;
  /** Clock time of the task's first report. */
  since: number;
  /** The budget last reported: what an item not yet reported is expected to get. */
  budget = 0;
  /** Steps the finished items took, and how many there are. */
  finishedSteps = 0;
  finishedCount = 0;
  /** Items going on now, and the most seen at once (the batch's slots). */
  running = 0;
  slots = 0;

  constructor(now: number) {
    this.since = now;
  }
}

/**
 * Keeps every task's step reports and gives its {@link StepFigures}.
 *
 * The ETA models the batch: `slots` images (the most seen going on at once) advance together,
 * each at the speed one image has had so far (steps per second of an image's own time, so the
 * pass that only decodes a finished image's best latent counts as time); an image that leaves
 * is replaced by the next, expected to take as many steps as the finished ones took on average
 * (the budget until one has finished). The time left is when the last slot runs dry.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const meter = new StepMeter();
 * const counts = { total: 2, ran: 0, cached: 0, failed: 0, final: true };
 * meter.report("optimize", "a", 0, 60, 0); // starts at step 0 of at most 60
 * meter.report("optimize", "b", 0, 60, 0);
 * meter.report("optimize", "a", 30, 60, 10_000);
 * meter.report("optimize", "b", 30, 60, 10_000);
 * const f = meter.figures("optimize", counts, 10_000)!;
 * assert.deepEqual([f.done, f.total, f.rate, f.eta], [60, 120, 6, 10]);
 * ```
 */
export class StepMeter {
  readonly #tasks = new Map<string, TaskSteps>();

  /**
   * Item `item` of `task` is at step `done` of at most `budget` at clock time `now` (ms). Its
   * first report says where it starts; later ones count as steps computed.
   */
  report(task: string, item: string, done: number, budget: number, now: number): void {
    let t = this.#tasks.get(task);
    if (!t) this.#tasks.set(task, t = new TaskSteps(now));
    const before = t.items.get(item);
    if (before?.finished) return;
    if (before) {
      before.done = Math.max(before.done, done);
      before.budget = budget;
    } else {
      t.items.set(item, { done, budget, finished: false, startDone: done, startAt: now });
      t.running++;
      t.slots = Math.max(t.slots, t.running);
    }
    t.budget = budget;
  }

  /** Item `item` of `task` finished (or failed) at clock time `now`: it takes no more steps. */
  finish(task: string, item: string, now: number): void {
    const t = this.#tasks.get(task);
    const steps = t?.items.get(item);
    if (!t || !steps || steps.finished) return;
    t.items.delete(item);
    t.running--;
    t.finishedSteps += steps.done;
    t.finishedCount++;
    t.finishedBudget += steps.budget;
    t.finishedComputed += steps.done - steps.startDone;
    t.finishedSeconds += (now - steps.startAt) / 1000;
  }

  /** Forgets a task that ended. */
  end(task: string): void {
    this.#tasks.delete(task);
  }

  /** The figures of `task` at clock time `now`, or undefined when its items report no steps. */
  figures(task: string, counts: TaskCounts, now: number): StepFigures | undefined {
    const t = this.#tasks.get(task);
    if (!t) return undefined;
    const unreported = Math.max(0, counts.total - counts.cached - t.items.size - t.finishedCount);
    // Each image still to go is expected to take what the finished ones took on average.
    const expected = t.finishedCount
      ? Math.min(t.budget, t.finishedSteps / t.finishedCount)
      : t.budget;
    let done = t.finishedBudget;
    let total = unreported * t.budget + t.finishedBudget;
    let computed = t.finishedComputed;
    let imageSeconds = t.finishedSeconds;
    const left: number[] = [];
    for (const s of t.items.values()) {
      total += s.budget;
      done += s.finished ? s.budget : Math.min(s.done, s.budget);
      computed += s.done - s.startDone;
      imageSeconds += ((s.endAt ?? now) - s.startAt) / 1000;
      // One still going past the average takes at least one more step.
      if (!s.finished) left.push(Math.min(s.budget, Math.max(expected, s.done + 1)) - s.done);
    }
    const seconds = (now - t.since) / 1000;
    const rate = seconds > 0 ? computed / seconds : 0;
    const perImage = imageSeconds > 0 ? computed / imageSeconds : 0;
    const eta = perImage > 0 && counts.final
      ? lastSlotFree(left, Math.max(t.slots, left.length), unreported, expected) / perImage
      : undefined;
    return { done, total, rate, eta };
  }
}

/**
 * Steps until the last of `slots` slots runs dry: the slots hold images with `left` steps to go
 * (the others are free), and `queued` images of `each` steps take the first slot that frees.
 */
function lastSlotFree(left: number[], slots: number, queued: number, each: number): number {
  const loads = [...left, ...new Array(Math.max(0, slots - left.length)).fill(0)];
  const busiest = Math.max(0, ...loads);
  if (queued === 0 || each <= 0) return busiest;
  // The queued images start at the moments slots free: L, L + each, L + 2·each … of every
  // slot. The last one starts at the `queued`-th smallest of those moments, found by bisection.
  const startsBy = (t: number) =>
    loads.reduce((n, l) => n + (t >= l ? Math.floor((t - l) / each) + 1 : 0), 0);
  let lo = 0;
  let hi = busiest + queued * each;
  while (hi - lo > 1e-6 * Math.max(1, hi)) {
    const mid = (lo + hi) / 2;
    if (startsBy(mid) >= queued) hi = mid;
    else lo = mid;
  }
  return Math.max(busiest, hi + each);
}

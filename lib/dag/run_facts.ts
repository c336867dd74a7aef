/**
 * The facts of one run that a published output states (the report's run section, `run.json`):
 * when it started, when the output was built, and per task its wall time, the time summed over
 * the items it ran, and how many items ran, came from the cache or failed.
 *
 * They are taken from the run's own events, so nothing in the tasks measures anything. A task
 * that publishes receives the facts of the run that built its output: on the run that executes
 * it, a snapshot taken when its action finished; on a later cache hit, that same snapshot, kept
 * beside the action's record. The facts never enter a key or an output digest, so a cache hit
 * republishes the very same files.
 *
 * @module
 */
import { getPath } from "./config.ts";
import type { Reporter, RunEvent, TaskCounts } from "./events.ts";
import type { Task } from "./task.ts";

/** The format name written into every {@link RunFacts}. */
export const RUN_FACTS_FORMAT = "latentforge.run-facts";

/** One task's part in a run. Times in seconds. */
export interface TaskFacts {
  task: string;
  /** How the task ended; `running` for the task whose output these facts describe. */
  status: "ok" | "failed" | "blocked" | "interrupted" | "running";
  /** When the task started, in seconds after the run started; null when it never started. */
  start_s: number | null;
  /** From the task's start to its end (or to the snapshot), or null when it never started. */
  wall_s: number | null;
  /**
   * The durations of the items it ran in this run, added up; items run side by side, so this
   * exceeds the wall time. Null for an aggregate task (one action: see `wall_s`).
   */
  item_s: number | null;
  /** Items executed in this run. */
  ran: number;
  /** Items served from the cache. */
  cached: number;
  failed: number;
  /** Items the task had. */
  total: number;
  /** `ran / wall_s` of a per-item task, or null when nothing ran. */
  items_per_s: number | null;
  /** Every item came from the cache: the task did no work in this run. */
  cache_hit: boolean;
}

/** The facts of the run that built a published output (the `run.json` format). */
export interface RunFacts {
  format: typeof RUN_FACTS_FORMAT;
  version: 1;
  /** The run's id (its start in milliseconds since the epoch). */
  run: number;
  /** ISO 8601 UTC time the run started. */
  started: string;
  /** ISO 8601 UTC time the output was built (its action finished). */
  built: string;
  /** Seconds from the run's start until the output was built. */
  seconds: number;
  /** The tasks of the run, in the order they were planned. */
  tasks: TaskFacts[];
  /**
   * How the output was made beyond what it states: the config fields its key does not hold
   * (where inputs were and where it went, how things ran: providers, threads, batch size …),
   * as the run that built it had them.
   */
  settings?: unknown;
  /**
   * The files the tasks declared (models, a spec, a labels list), by config field, as the run's
   * config named them: a path or a URL. Where they were, which no key holds.
   */
  inputs?: Record<string, string>;
}

interface Tracked {
  started?: number;
  ended?: number;
  status?: TaskFacts["status"];
  counts?: TaskCounts;
  itemMs: number;
}

/** Options of {@link RunFactsCollector}. */
export interface RunFactsOptions {
  /** Milliseconds since the epoch. Default `Date.now`; tests inject their own clock. */
  now?: () => number;
  /** Tasks with one action over all inputs, whose summed item time is their wall time. */
  aggregates?: Iterable<string>;
  /** The files the tasks declared, by config field (see {@link RunFacts.inputs}). */
  inputs?: Record<string, string>;
}

/**
 * Collects {@link RunFacts} from a run's events.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * let t = 0;
 * const facts = new RunFactsCollector({ now: () => t, aggregates: ["b"] });
 * facts.observe({ event: "run-start", run: 0, targets: ["b"], tasks: ["a", "b"], dryRun: false });
 * facts.observe({ event: "task-start", task: "b" });
 * t = 1500;
 * assert.equal(facts.snapshot("b").seconds, 1.5);
 * ```
 */
export class RunFactsCollector {
  readonly #now: () => number;
  #run = 0;
  #started = 0;
  #order: string[] = [];
  readonly #tasks = new Map<string, Tracked>();
  readonly #aggregates: Set<string>;
  readonly #inputs?: Record<string, string>;

  constructor({ now = Date.now, aggregates = [], inputs }: RunFactsOptions = {}) {
    this.#now = now;
    this.#aggregates = new Set(aggregates);
    this.#inputs = inputs;
  }

  /** Takes one event of the run. */
  observe(event: RunEvent): void {
    const at = this.#now();
    switch (event.event) {
      case "run-start":
        this.#run = event.run;
        this.#started = at;
        this.#order = [...event.tasks];
        return;
      case "task-start":
        this.#task(event.task).started = at;
        return;
      case "item": {
        const t = this.#task(event.task);
        if (event.status === "ran") t.itemMs += event.ms;
        return;
      }
      case "task-end": {
        const t = this.#task(event.task);
        t.ended = at;
        t.status = event.status;
        t.counts = { ...event.counts };
        return;
      }
      default:
        return;
    }
  }

  /**
   * The facts so far, with `building` (the aggregate task whose action just finished) counted
   * as having run, its wall time up to now.
   */
  snapshot(building: string): RunFacts {
    const at = this.#now();
    const tasks = this.#order.map((name): TaskFacts => {
      const t = this.#task(name);
      if (name === building) {
        return {
          task: name,
          status: "running",
          start_s: round(((t.started ?? at) - this.#started) / 1000),
          wall_s: round(((t.ended ?? at) - (t.started ?? at)) / 1000),
          item_s: null,
          ran: 1,
          cached: 0,
          failed: 0,
          total: 1,
          items_per_s: null,
          cache_hit: false,
        };
      }
      const c = t.counts ?? { total: 0, ran: 0, cached: 0, failed: 0, final: false };
      const wall = t.started === undefined ? null : round(((t.ended ?? at) - t.started) / 1000);
      const aggregate = this.#aggregates.has(name);
      return {
        task: name,
        status: t.status ?? "running",
        start_s: t.started === undefined ? null : round((t.started - this.#started) / 1000),
        wall_s: wall,
        item_s: aggregate ? null : round(t.itemMs / 1000),
        ran: c.ran,
        cached: c.cached,
        failed: c.failed,
        total: c.total,
        items_per_s: !aggregate && c.ran > 0 && wall !== null && wall > 0
          ? round(c.ran / wall)
          : null,
        cache_hit: c.ran === 0 && c.failed === 0 && c.cached > 0 && c.cached === c.total,
      };
    });
    return {
      format: RUN_FACTS_FORMAT,
      version: 1,
      run: this.#run,
      started: new Date(this.#started).toISOString(),
      built: new Date(at).toISOString(),
      seconds: round((at - this.#started) / 1000),
      tasks,
      ...(this.#inputs && Object.keys(this.#inputs).length ? { inputs: this.#inputs } : {}),
    };
  }

  #task(name: string): Tracked {
    let t = this.#tasks.get(name);
    if (!t) {
      t = { itemMs: 0 };
      this.#tasks.set(name, t);
    }
    return t;
  }
}

/**
 * The files `tasks` declare under `config`, by config field: the path or URL each field names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { each } from "./task.ts";
 *
 * const encode = each({
 *   name: "encode", deps: [], config: [], version: "1", source: "file:///encode.ts",
 *   describe: "encode", files: () => ({ encoder: "model.encoder" }),
 * });
 * const config = { model: { encoder: { path: "models/vae_encoder.onnx" } } };
 * assert.deepEqual(declaredFiles([encode], config), { "model.encoder": "models/vae_encoder.onnx" });
 * ```
 */
export function declaredFiles(tasks: readonly Task[], config: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const task of tasks) {
    for (const declared of Object.values(task.files?.(config) ?? {})) {
      // A field's name, or a declaration naming its field.
      const field = typeof declared === "string"
        ? declared
        : (declared as { field?: string } | undefined)?.field;
      if (field === undefined) continue;
      const source = getPath(config, field) as { path?: unknown; url?: unknown } | undefined;
      const where = source?.path ?? source?.url;
      if (typeof where === "string") out[field] = where;
    }
  }
  return out;
}

/**
 * A reporter that hands every event to `facts` as well as to `reporter`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const facts = new RunFactsCollector({ now: () => 0 });
 * const seen: string[] = [];
 * const reporter = observedReporter({ emit: (e) => seen.push(e.event), progress() {}, close() {} }, facts);
 * reporter.emit({ event: "run-start", run: 7, targets: ["a"], tasks: ["a"], dryRun: false });
 * assert.deepEqual(seen, ["run-start"]); // handed on
 * assert.equal(facts.snapshot("a").run, 7); // and observed
 * ```
 */
export function observedReporter(reporter: Reporter, facts: RunFactsCollector): Reporter {
  return {
    emit(event) {
      facts.observe(event);
      reporter.emit(event);
    },
    progress: (task, counts) => reporter.progress(task, counts),
    steps: (task, item, done, budget) => reporter.steps?.(task, item, done, budget),
    close: () => reporter.close(),
  };
}

/** Milliseconds are the clock's resolution: more decimals would only be noise in run.json. */
function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}

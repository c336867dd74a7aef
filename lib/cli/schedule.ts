/**
 * The schedule: `Deno.cron` runs the configured targets under the lease; the last run is kept
 * in KV so a run missed while the machine was off is caught up once on start, and an
 * overlapping tick is skipped with a log line.
 *
 * @module
 */
import { join } from "node:path";
import type { Command } from "commander";
import { loadConfig } from "../dag/config.ts";
import { runPipeline } from "../dag/plan.ts";
import { chooseReporter } from "../dag/progress.ts";
import { ObjectStore } from "../store/objects.ts";
import { KEYS, openRecords } from "../store/records.ts";
import { previousFire } from "./cron.ts";
import { runLeased } from "./leases.ts";
import { type Cli, type CommonOptions, withCommon } from "./options.ts";

/**
 * Adds `schedule [--once]` to the program; its action sets `cli.code`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Command } from "commander";
 * import { TaskGraph } from "../dag/graph.ts";
 * import { aggregate, type Pipeline } from "../dag/task.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/hello.ts`, "// the task's source\n");
 * await Deno.writeTextFile(
 *   `${dir}/p.json`,
 *   JSON.stringify({ schedule: { cron: "0 3 * * *", targets: ["hello"] } }),
 * );
 * const hello = aggregate({
 *   name: "hello", deps: [], config: [], version: "1", source: `file://${dir}/hello.ts`,
 *   describe: "say hello", run: () => Promise.resolve({ objects: {}, meta: "hi" }),
 * });
 * const pipeline: Pipeline = {
 *   name: "p", version: "0", tasks: [hello], defaultConfig: `${dir}/p.json`,
 *   defaultTargets: ["hello"], schema: { safeParse: (v) => ({ success: true, data: v }) },
 * };
 * const cli = { pipeline, graph: new TaskGraph(pipeline.tasks), code: -1 };
 * const program = new Command().exitOverride();
 * addScheduleCommand(program, cli);
 * // Never run before, so the last 03:00 is due: it runs now, once.
 * await program.parseAsync(["schedule", "--once", "--json", "--cache", `${dir}/cache`], {
 *   from: "user",
 * });
 * assert.equal(cli.code, 0);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function addScheduleCommand<C>(program: Command, cli: Cli<C>): void {
  const { pipeline, graph } = cli;
  withCommon(
    program.command("schedule").description(
      "rebuild the schedule's targets on its cron (schedule.cron, UTC)",
    ),
    pipeline.defaultConfig,
  )
    .option("--once", "run now if due, then exit (for system cron or systemd timers)")
    .action(async (opts: CommonOptions & { once?: boolean }) => {
      const config = () => loadConfig(pipeline, opts.config, opts.set);
      cli.code = await runSchedule({
        once: opts.once ?? false,
        cacheDir: opts.cache,
        loadConfig: config,
        run: async (targets, signal) => {
          const store = new ObjectStore(opts.cache);
          const records = await openRecords(opts.cache);
          try {
            const loaded = await config();
            return await runLeased(records, opts.cache, "schedule", false, async () => {
              const r = await runPipeline({
                graph,
                targets,
                config: loaded,
                store,
                records,
                reporter: chooseReporter(opts.json ?? false),
                signal,
              });
              if (r.fault) console.error(`error: ${r.fault.message}`);
              return r.exitCode;
            });
          } finally {
            records.close();
          }
        },
      });
    });
}

/** What the schedule needs from the config. */
export interface ScheduleConfig {
  schedule: { cron: string; targets: string[] };
}

/** The last scheduled run, as kept in KV. */
export interface ScheduleState {
  /** The cron slot this run served. */
  slot: string;
  started: string;
  finished?: string;
  exitCode?: number;
}

const KEY = KEYS.schedule;

/** Options of {@link runSchedule}. */
export interface ScheduleOptions {
  once: boolean;
  cacheDir: string;
  loadConfig: () => Promise<unknown>;
  /** Runs the targets (taking the lease itself) and returns the exit code. */
  run: (targets: string[], signal: AbortSignal) => Promise<number>;
  now?: () => Date;
  log?: (line: string) => void;
}

/**
 * Runs the schedule: with `once`, runs if due and returns; otherwise catches up a missed run,
 * then serves `Deno.cron` ticks until interrupted.
 */
export async function runSchedule(options: ScheduleOptions): Promise<number> {
  const { once, cacheDir, run } = options;
  const now = options.now ?? (() => new Date());
  const log = options.log ?? ((line: string) => console.error(`${now().toISOString()} ${line}`));
  const config = await options.loadConfig() as ScheduleConfig;
  const { cron, targets } = config.schedule;
  await Deno.mkdir(cacheDir, { recursive: true });
  const kv = await Deno.openKv(join(cacheDir, "records.sqlite3"));
  const controller = new AbortController();
  let running = false;

  const fire = async (slot: Date, why: string): Promise<number> => {
    if (running) {
      log(`schedule: tick for ${slot.toISOString()} skipped: the previous run is still going`);
      return 0;
    }
    running = true;
    try {
      log(`schedule: running ${targets.join(", ")} for ${slot.toISOString()} (${why})`);
      await kv.set(KEY, { slot: slot.toISOString(), started: now().toISOString() });
      const code = await run(targets, controller.signal);
      await kv.set(
        KEY,
        {
          slot: slot.toISOString(),
          started: now().toISOString(),
          finished: now().toISOString(),
          exitCode: code,
        } satisfies ScheduleState,
      );
      log(`schedule: run for ${slot.toISOString()} exited ${code}`);
      return code;
    } finally {
      running = false;
    }
  };

  const due = async (): Promise<Date | null> => {
    const slot = previousFire(cron, now());
    if (!slot) return null;
    const last = (await kv.get<ScheduleState>(KEY)).value;
    return !last || new Date(last.slot) < slot ? slot : null;
  };

  try {
    const slot = await due();
    if (once) {
      if (!slot) {
        const last = (await kv.get<ScheduleState>(KEY)).value;
        log(`schedule: not due (last run served ${last?.slot ?? "nothing"}; cron "${cron}")`);
        return 0;
      }
      return await fire(slot, "due");
    }
    if (slot) await fire(slot, "missed while not running; catching up");
    const stop = () => controller.abort();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    log(`schedule: waiting for cron "${cron}" (UTC) to run ${targets.join(", ")}`);
    await Deno.cron("latentforge schedule", cron, { signal: controller.signal }, async () => {
      const tick = previousFire(cron, now()) ?? now();
      await fire(tick, "cron");
    });
    return 0;
  } finally {
    kv.close();
  }
}

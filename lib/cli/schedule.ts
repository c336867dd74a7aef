/**
 * The schedule: `Deno.cron` runs the configured targets under the lease; the last run is kept
 * in KV so a run missed while the machine was off is caught up once on start, and an
 * overlapping tick is skipped with a log line.
 *
 * @module
 */
import { join } from "node:path";
import { previousFire } from "./cron.ts";
import { KEYS } from "../store/records.ts";

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

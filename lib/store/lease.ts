/**
 * The lease that keeps two runs from writing to one cache at once. It lives in KV, is renewed
 * by a heartbeat, and a lease whose holder died expires on its own: at once when the holder was
 * a process on this host that no longer exists, otherwise when its heartbeat stops.
 *
 * @module
 */
import { hostname } from "node:os";
import { KEYS } from "./records.ts";
import { sleep } from "../net/retry.ts";

/** Who holds the lease. */
export interface LeaseHolder {
  pid: number;
  host: string;
  /** Process start time (clock ticks since boot) so a reused pid is not mistaken for the holder. */
  startTicks: string;
  command: string;
  since: string;
  expires: number;
}

/** Raised when another live process holds the lease. */
export class LeaseHeldError extends Error {
  override readonly name = "LeaseHeldError";
  readonly holder: LeaseHolder;
  constructor(holder: LeaseHolder, cacheDir: string) {
    super(
      `the cache ${cacheDir} is in use by "${holder.command}" (pid ${holder.pid} on ${holder.host}) ` +
        `since ${holder.since}; wait for it to finish, or pass --wait to wait for it`,
    );
    this.holder = holder;
  }
}

const KEY = KEYS.lease;
const TTL_MS = 15_000;
const HEARTBEAT_MS = 3_000;

/** A held lease; `release()` gives it back. */
export interface Lease {
  release(): Promise<void>;
}

/**
 * Takes the lease or throws {@link LeaseHeldError}; with `wait`, polls until it is free.
 *
 * @example
 * ```ts
 * const kv = await Deno.openKv("cache/records.sqlite3");
 * const lease = await acquireLease(kv, { cacheDir: "cache", command: "run" });
 * try { } finally { await lease.release(); }
 * ```
 */
export async function acquireLease(
  kv: Deno.Kv,
  { cacheDir, command, wait = false, onWait }: {
    cacheDir: string;
    command: string;
    wait?: boolean;
    onWait?: (holder: LeaseHolder) => void;
  },
): Promise<Lease> {
  const me = (): LeaseHolder => ({
    pid: Deno.pid,
    host: hostname(),
    startTicks: processStart(Deno.pid) ?? "",
    command,
    since: new Date().toISOString(),
    expires: Date.now() + TTL_MS,
  });
  let told = false;
  while (true) {
    const current = await kv.get<LeaseHolder>(KEY);
    if (current.value && isAlive(current.value)) {
      if (!wait) throw new LeaseHeldError(current.value, cacheDir);
      if (!told) onWait?.(current.value);
      told = true;
      await sleep(500);
      continue;
    }
    const holder = me();
    const res = await kv.atomic().check(current).set(KEY, holder).commit();
    if (!res.ok) continue;
    let released = false;
    let beat: Promise<unknown> = Promise.resolve();
    const timer = setInterval(() => {
      beat = kv.atomic()
        .set(KEY, { ...holder, expires: Date.now() + TTL_MS })
        .commit()
        .catch(() => {});
    }, HEARTBEAT_MS);
    Deno.unrefTimer(Number(timer));
    return {
      async release() {
        if (released) return;
        released = true;
        clearInterval(timer);
        await beat;
        const now = await kv.get<LeaseHolder>(KEY);
        if (now.value?.pid === holder.pid && now.value.host === holder.host) {
          await kv.atomic().check(now).delete(KEY).commit();
        }
      },
    };
  }
}

/** Reads the lease holder, if any live one. */
export async function leaseHolder(kv: Deno.Kv): Promise<LeaseHolder | null> {
  const current = await kv.get<LeaseHolder>(KEY);
  return current.value && isAlive(current.value) ? current.value : null;
}

function isAlive(holder: LeaseHolder): boolean {
  if (holder.host === hostname() && HAS_PROC) {
    const start = processStart(holder.pid);
    return start !== null && (holder.startTicks === "" || start === holder.startTicks);
  }
  return holder.expires > Date.now();
}

const HAS_PROC = processStart(Deno.pid) !== null;

function processStart(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Field 22 (starttime) counted after the parenthesised command name, which may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

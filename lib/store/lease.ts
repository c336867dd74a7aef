/**
 * The lease that keeps two runs from writing to one cache at once: an exclusive advisory lock
 * (flock) on `<cache>/lease.lock`, held for as long as the command runs. The system drops it
 * the moment its holder exits, however it exits (kill -9, a full disk), so a dead holder never
 * blocks the next run and freeing it needs no write. Who holds it (pid, host, command, since)
 * is written into the lock file (for the message another run prints) and noted in KV; a note
 * whose lock is free is stale.
 *
 * @module
 */
import { hostname } from "node:os";
import { join } from "node:path";
import { sleep } from "../base/sleep.ts";
import { writeAll } from "../base/fs.ts";
import type { LeaseNote } from "./record_types.ts";
import type { Records } from "./records.ts";
import { systemicFault } from "./systemic.ts";
import { recordsFault } from "./records_file.ts";

/** Who holds the lease. */
export type LeaseHolder = LeaseNote;

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

/** The lock file's name inside the cache. */
export const LEASE_FILE = "lease.lock";

/** A held lease; `release()` gives it back. */
export interface Lease {
  release(): Promise<void>;
}

/**
 * Takes the lease or throws {@link LeaseHeldError}; with `wait`, polls until it is free.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRecords } from "./records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const records = await openRecords(cache);
 * const lease = await acquireLease(records, { cacheDir: cache, command: "gc" });
 * try {
 *   // A second holder in this process cannot take it either.
 *   await assert.rejects(acquireLease(records, { cacheDir: cache, command: "run" }), LeaseHeldError);
 * } finally {
 *   await lease.release();
 * }
 * records.close();
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function acquireLease(
  records: Pick<Records, "putLeaseNote" | "dropLeaseNote">,
  { cacheDir, command, wait = false, onWait }: {
    cacheDir: string;
    command: string;
    wait?: boolean;
    onWait?: (holder: LeaseHolder) => void;
  },
): Promise<Lease> {
  const lock = await Deno.open(join(cacheDir, LEASE_FILE), {
    read: true,
    write: true,
    create: true,
  });
  let told = false;
  try {
    while (!(await lock.tryLock(true))) {
      const holder = await describedHolder(cacheDir);
      if (!wait) throw new LeaseHeldError(holder, cacheDir);
      if (!told) onWait?.(holder);
      told = true;
      await sleep(500);
    }
    const me: LeaseHolder = {
      pid: Deno.pid,
      host: hostname(),
      command,
      since: new Date().toISOString(),
    };
    // Noted in the lock file at once (another run reads it to name the holder), and in KV. The
    // notes only name the holder: on a full disk (where gc must still be able to run) the lock
    // holds without them.
    try {
      await lock.truncate(0);
      await writeAll(lock, new TextEncoder().encode(JSON.stringify(me)));
      await records.putLeaseNote(me);
    } catch (e) {
      if (!systemicFault(e, { cacheDir })) throw e;
    }
  } catch (e) {
    lock.close();
    throw e;
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      try {
        await records.dropLeaseNote((note) => note.pid === Deno.pid && note.host === hostname());
      } catch (e) {
        // A full disk or a damaged database may refuse the write; the note is then stale, and a
        // stale note is ignored once the lock is free.
        if (!recordsFault(e, cacheDir)) throw e;
      } finally {
        // The lock is what counts: it goes whatever happened to the note.
        lock.close();
      }
    },
  };
}

/**
 * Reads the lease holder, if a live process holds it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRecords } from "./records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const records = await openRecords(cache);
 * assert.equal(await leaseHolder(cache), null);
 * const lease = await acquireLease(records, { cacheDir: cache, command: "gc" });
 * assert.equal((await leaseHolder(cache))?.pid, Deno.pid);
 * await lease.release();
 * records.close();
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function leaseHolder(cacheDir: string): Promise<LeaseHolder | null> {
  let lock: Deno.FsFile;
  try {
    lock = await Deno.open(join(cacheDir, LEASE_FILE), { read: true, write: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    if (await lock.tryLock(true)) return null;
    return await describedHolder(cacheDir);
  } finally {
    lock.close();
  }
}

async function describedHolder(cacheDir: string): Promise<LeaseHolder> {
  // The holder writes its note right after taking the lock; give it a moment to appear.
  for (let attempt = 0; attempt < 100; attempt++) {
    const text = await Deno.readTextFile(join(cacheDir, LEASE_FILE));
    try {
      const note = JSON.parse(text) as LeaseHolder;
      if (typeof note.pid === "number") return note;
    } catch (e) {
      // Empty or half-written: read again.
      if (!(e instanceof SyntaxError)) throw e;
    }
    await sleep(20);
  }
  return { pid: 0, host: "?", command: "another latentforge command", since: "just now" };
}

/**
 * Running a command under the cache's lease: another command holding it ends this one with
 * exit code 2 naming the holder, or, with `--wait`, is waited for.
 *
 * @module
 */
import { type Wait, waits } from "../base/waits.ts";
import { acquireLease, type Lease, LeaseHeldError } from "../store/lease.ts";
import { ObjectStore } from "../store/objects.ts";
import { openRecords, type Records } from "../store/records.ts";
import { EXIT } from "./exit_codes.ts";

/**
 * Runs `fn` holding the lease of `cacheDir` (whose records are open as `records`) and returns
 * its exit code; {@link EXIT.busy} when another command holds the lease and `wait` is false.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openRecords } from "../store/records.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const records = await openRecords(cache);
 * const code = await runLeased(records, cache, "gc", false, () => Promise.resolve(0));
 * assert.equal(code, 0);
 * records.close();
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function runLeased(
  records: Records,
  cacheDir: string,
  command: string,
  wait: boolean,
  fn: () => Promise<number>,
): Promise<number> {
  let lease: Lease;
  let waiting: Wait | undefined;
  try {
    lease = await acquireLease(records, {
      cacheDir,
      command,
      wait,
      onWait: (h) => {
        console.error(`waiting for pid ${h.pid} (${h.command}, since ${h.since})`);
        // Named on the board as long as it lasts, so the progress output keeps saying it.
        waiting = waits.begin(
          `the cache ${cacheDir}: another run holds it (pid ${h.pid}, ${h.command}, since ${h.since})`,
        );
      },
    });
  } catch (e) {
    if (e instanceof LeaseHeldError) {
      console.error(e.message);
      return EXIT.busy;
    }
    throw e;
  } finally {
    waiting?.end();
  }
  try {
    return await fn();
  } finally {
    await lease.release();
  }
}

/**
 * Opens the store and records of `cache` and runs `fn` with them under the lease, then closes
 * the records.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const cache = await Deno.makeTempDir();
 * const code = await withLease(cache, "gc", async (_store, records) => {
 *   assert.equal((await records.runs()).length, 0);
 *   return 0;
 * });
 * assert.equal(code, 0);
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function withLease(
  cache: string,
  command: string,
  fn: (store: ObjectStore, records: Records) => Promise<number>,
): Promise<number> {
  const store = new ObjectStore(cache);
  const records = await openRecords(cache);
  try {
    return await runLeased(records, cache, command, false, () => fn(store, records));
  } finally {
    records.close();
  }
}

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { HostGate } from "../lib/net/host_gate.ts";
import { retry } from "../lib/base/retry.ts";
import { DownloadError } from "../lib/net/download_error.ts";

Deno.test("quota back-off starts at quota_backoff_s, doubles while refusals persist, resets on success", () => {
  let now = 0;
  const gate = new HostGate({ quotaBackoffS: 600, now: () => now });
  strictEqual(gate.reportQuota("drive.google.com"), 600_000);
  now += 1_000;
  // A refusal during the same period does not double it.
  strictEqual(gate.reportQuota("drive.google.com"), 599_000);
  strictEqual(gate.backoffRemainingMs("other.example"), 0);
  now += 600_000;
  strictEqual(gate.backoffRemainingMs("drive.google.com"), 0);
  strictEqual(gate.reportQuota("drive.google.com"), 1_200_000);
  now += 1_200_000;
  strictEqual(gate.reportQuota("drive.google.com"), 2_400_000);
  now += 2_400_000;
  gate.reportSuccess("drive.google.com");
  strictEqual(gate.reportQuota("drive.google.com"), 600_000);
});

Deno.test("a share of quota replies among successes keeps the base back-off instead of doubling", () => {
  let now = 0;
  const gate = new HostGate({ quotaBackoffS: 1, now: () => now });
  strictEqual(gate.reportQuota("h"), 1_000);
  now += 1_000;
  // Refused again with no success in between: the quota persists, the back-off doubles.
  strictEqual(gate.reportQuota("h"), 2_000);
  for (let period = 0; period < 10; period++) {
    // Requests admitted after a back-off succeed while the next one (begun by another refusal
    // among them) runs: the host is serving, so the next back-off starts from the base again.
    now += 10;
    gate.reportSuccess("h");
    now += 2_000;
    strictEqual(gate.reportQuota("h"), 1_000, `period ${period}`);
  }
});

Deno.test("at most perHost requests run per host; other hosts are not held up", async () => {
  const gate = new HostGate({ perHost: 2 });
  const a1 = await gate.acquire("a");
  await gate.acquire("a");
  let third = false;
  const waiting = gate.acquire("a").then((r) => {
    third = true;
    return r;
  });
  const b = await gate.acquire("b");
  strictEqual(gate.activeCount("b"), 1);
  // The third caller is queued for a slot of "a": only a release can admit it.
  strictEqual(gate.waitingCount("a"), 1);
  strictEqual(gate.waitingCount("b"), 0);
  strictEqual(third, false);
  strictEqual(gate.activeCount("a"), 2);
  a1();
  a1(); // releasing twice frees one slot only
  await waiting;
  strictEqual(third, true);
  strictEqual(gate.waitingCount("a"), 0);
  strictEqual(gate.activeCount("a"), 2);
  b();
  const controller = new AbortController();
  const aborted = gate.acquire("a", controller.signal);
  controller.abort(new Error("stopped"));
  await rejects(aborted, /stopped/);
});

Deno.test("acquireUnlessBackedOff passes over a backed-off host instead of waiting", async () => {
  const gate = new HostGate({ quotaBackoffS: 60 });
  gate.reportQuota("a");
  strictEqual(await gate.acquireUnlessBackedOff("a"), null);
  const release = await gate.acquireUnlessBackedOff("b");
  ok(release);
  release();
});

Deno.test("retry: retryable errors are retried with growing jittered waits, others thrown at once", async () => {
  const waits: number[] = [];
  let calls = 0;
  const value = await retry((attempt) => {
    calls++;
    if (attempt < 4) return Promise.reject(new DownloadError("reset", `boom ${attempt}`));
    return Promise.resolve("ok");
  }, {
    attempts: 5,
    baseMs: 10,
    maxMs: 25,
    random: () => 0.999,
    onRetry: (_e, _a, d) => waits.push(d),
  });
  strictEqual(value, "ok");
  strictEqual(calls, 4);
  deepStrictEqual(waits, [9, 19, 24]);

  calls = 0;
  await rejects(
    retry(() => {
      calls++;
      return Promise.reject(new DownloadError("not_found", "HTTP 404"));
    }, { attempts: 5, baseMs: 1 }),
    /HTTP 404/,
  );
  strictEqual(calls, 1);

  calls = 0;
  await rejects(
    retry(() => {
      calls++;
      return Promise.reject(new DownloadError("stall", `stall ${calls}`));
    }, { attempts: 3, baseMs: 1 }),
    /stall 3/,
  );
  strictEqual(calls, 3);

  // Quota refusals need not use up attempts.
  calls = 0;
  const v = await retry(() => {
    calls++;
    return calls <= 6
      ? Promise.reject(new DownloadError("quota", "quota"))
      : Promise.resolve(calls);
  }, {
    attempts: 2,
    baseMs: 1,
    maxMs: 2,
    countsAsAttempt: (e) => (e as DownloadError).kind !== "quota",
  });
  strictEqual(v, 7);
});

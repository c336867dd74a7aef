/**
 * Every wait is named while it lasts: a host's quota back-off, the delay before a declared file
 * is fetched again, another run holding the cache; and the heartbeats of the plain and JSON
 * outputs say them every 10 s, during a run and before it starts.
 */
import { assert, assertEquals } from "./fixtures/assert.ts";
import { retry } from "../lib/base/retry.ts";
import { WaitBoard, waits } from "../lib/base/waits.ts";
import { HostGate } from "../lib/net/host_gate.ts";
import { runLeased } from "../lib/cli/leases.ts";
import { HEARTBEAT_MS, JsonReporter, PlainReporter } from "../lib/dag/progress.ts";
import { FakeClock } from "./fixtures/fake_clock.ts";
import { openRecords } from "../lib/store/records.ts";

/** The clock of these tests: 06:27:00 UTC. */
const START = Date.UTC(2026, 10, 21, 6, 27, 0);

Deno.test("a caller waiting out a host's quota back-off is named, with the setting that sets its length", async () => {
  const board = new WaitBoard();
  let now = Date.UTC(2026, 10, 21, 6, 27, 12);
  let wake = () => {};
  const gate = new HostGate({
    quotaBackoffS: 600,
    now: () => now,
    sleep: () => new Promise<void>((resolve) => wake = resolve),
    backoffSetting: "download.quota_backoff_s",
    waits: board,
  });
  gate.reportQuota("drive.google.com");
  const admitted = gate.acquire("drive.google.com");
  await Promise.resolve();
  assertEquals(board.current(), [
    "drive.google.com: quota exceeded at 06:27, next try 06:37 (download.quota_backoff_s)",
  ]);
  now += 600_000;
  wake();
  (await admitted)();
  assertEquals(board.current(), []);
});

Deno.test("callers queued for a host's free slot are named once, while they wait", async () => {
  const board = new WaitBoard();
  const gate = new HostGate({
    perHost: 2,
    perHostSetting: "download.concurrency_per_host",
    waits: board,
  });
  const held = [await gate.acquire("example.org"), await gate.acquire("example.org")];
  const queued = [gate.acquire("example.org"), gate.acquire("example.org")];
  assertEquals(board.current(), [
    "example.org: all 2 download slots busy (download.concurrency_per_host), more downloads queued",
  ]);
  held[0]();
  const third = await queued[0];
  // One is still queued behind the two slots taken.
  assertEquals(board.current().length, 1);
  held[1]();
  (await queued[1])();
  third();
  assertEquals(board.current(), []);
});

Deno.test("a declared file's retry delay is named by its field while it lasts", async () => {
  const board = new WaitBoard();
  const named: string[][] = [];
  const stop = board.subscribe(() => named.push(board.current()));
  let calls = 0;
  const text = await retry(() => {
    if (++calls < 2) {
      const e = new Error('https://drive.google.com/uc?id=x: "Quota exceeded" page (HTTP 200)');
      return Promise.reject(Object.assign(e, { retryable: true }));
    }
    return Promise.resolve("spec");
  }, { baseMs: 1, name: "dataset.spec", waits: board });
  stop();
  assertEquals(text, "spec");
  // Named when the wait began, gone when it ended.
  assertEquals(named.length, 2);
  assertEquals(named[1], []);
  assert(
    /^dataset\.spec: https:\/\/drive\.google\.com\/uc\?id=x: "Quota exceeded" page \(HTTP 200\); next try at \d\d:\d\d:\d\d$/
      .test(named[0][0]),
    named[0][0],
  );
});

Deno.test("a run waiting for another run's lease is named until it has the lease", async () => {
  const cache = await Deno.makeTempDir({ prefix: "latentforge-waits-" });
  const first = await openRecords(cache);
  const second = await openRecords(cache);
  try {
    let release = () => {};
    const held = Promise.withResolvers<void>();
    const holding = runLeased(first, cache, "run", false, () =>
      new Promise<number>((resolve) => {
        release = () => resolve(0);
        held.resolve();
      }));
    // The first run holds the lease before the second asks for it.
    await held.promise;
    const seen: string[][] = [];
    const stop = waits.subscribe(() => seen.push(waits.current()));
    const waiting = runLeased(second, cache, "run", true, () => Promise.resolve(7));
    while (seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    assertEquals(seen[0].length, 1);
    assert(
      seen[0][0].startsWith(
        `the cache ${cache}: another run holds it (pid ${Deno.pid}, run, since `,
      ),
      seen[0][0],
    );
    release();
    assertEquals(await holding, 0);
    assertEquals(await waiting, 7);
    stop();
    assertEquals(waits.current(), []);
  } finally {
    first.close();
    second.close();
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("heartbeats name every wait: before a run starts, during it, and as JSON", () => {
  const clock = new FakeClock(START);
  const board = new WaitBoard();
  const lines: string[] = [];
  const plain = new PlainReporter({
    write: (t) => lines.push(...t.trimEnd().split("\n")),
    clock,
    waits: board,
  });
  const json: string[] = [];
  const jsonReporter = new JsonReporter({
    write: (t) => json.push(t.trimEnd()),
    clock,
    waits: board,
  });
  // No run yet (waiting for the lease): the wait alone starts the beat.
  const lease = board.begin("the cache /c: another run holds it (pid 7, run, since 06:00)");
  clock.advance(HEARTBEAT_MS);
  assertEquals(lines, [
    "06:27:10 waiting: the cache /c: another run holds it (pid 7, run, since 06:00)",
  ]);
  assertEquals(JSON.parse(json[0]), {
    event: "progress",
    task: null,
    waiting: ["the cache /c: another run holds it (pid 7, run, since 06:00)"],
  });
  lease.end();
  clock.advance(3 * HEARTBEAT_MS);
  assertEquals(lines.length, 1, "no beat once nothing is waited for and no run goes on");

  for (const r of [plain, jsonReporter]) {
    r.emit({
      event: "run-start",
      run: 1,
      targets: ["fetch-json"],
      tasks: ["fetch-json"],
      dryRun: false,
    });
    r.emit({ event: "task-start", task: "fetch-json" });
  }
  const quota = board.begin(
    "drive.google.com: quota exceeded at 06:27, next try 06:37 (download.quota_backoff_s)",
  );
  clock.advance(HEARTBEAT_MS);
  assertEquals(lines.slice(-2), [
    "06:27:50 fetch-json: no item finished yet · running for 10.0s",
    "06:27:50 waiting: drive.google.com: quota exceeded at 06:27, next try 06:37 (download.quota_backoff_s)",
  ]);
  const last = json.slice(-2).map((l) => JSON.parse(l));
  assertEquals(last[0].task, "fetch-json");
  assertEquals(last[1], { event: "progress", task: null, waiting: [quota.text] });
  quota.end();
  for (const r of [plain, jsonReporter]) {
    r.emit({ event: "run-end", run: 1, status: "ok", exitCode: 0, seconds: 20 });
    r.close();
  }
  assertEquals(clock.pending, 0);
  assertEquals(lines.at(-1), "06:27:50 run 1 ok in 20.0s");
});

Deno.test("a plan ends saying nothing ran", () => {
  const clock = new FakeClock(START);
  const lines: string[] = [];
  const plain = new PlainReporter({
    write: (t) => lines.push(...t.trimEnd().split("\n")),
    clock,
    waits: new WaitBoard(),
  });
  plain.emit({ event: "run-start", run: 3, targets: ["a"], tasks: ["a"], dryRun: true });
  plain.emit({ event: "run-end", run: 3, status: "ok", exitCode: 0, seconds: 0.02 });
  plain.close();
  assertEquals(lines, ["06:27:00 plan 3: a", "06:27:00 plan 3 (nothing run)"]);
});

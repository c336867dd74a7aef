import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./fixtures/assert.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";
import { previousFire } from "../lib/cli/cron.ts";

Deno.test("cron: the last slot at or before now, in UTC", () => {
  const at = (s: string) => new Date(s);
  assertEquals(previousFire("0 3 * * *", at("2026-03-10T10:00:00Z")), at("2026-03-10T03:00:00Z"));
  assertEquals(previousFire("0 3 * * *", at("2026-03-10T02:59:00Z")), at("2026-03-09T03:00:00Z"));
  assertEquals(
    previousFire("*/15 * * * *", at("2026-03-10T10:44:30Z")),
    at("2026-03-10T10:30:00Z"),
  );
  assertEquals(previousFire("30 4 1 * *", at("2026-03-10T00:00:00Z")), at("2026-03-01T04:30:00Z"));
  // 2026-03-08 is a Sunday.
  assertEquals(previousFire("0 0 * * 0", at("2026-03-10T00:00:00Z")), at("2026-03-08T00:00:00Z"));
  // Standard cron: with both day fields restricted, either matches (2026-03-09 is a Monday).
  assertEquals(previousFire("0 0 1 * 1", at("2026-03-10T00:00:00Z")), at("2026-03-09T00:00:00Z"));
  // A slot exactly at `now` has fired.
  assertEquals(previousFire("0 3 * * *", at("2026-03-10T03:00:00Z")), at("2026-03-10T03:00:00Z"));
  assertThrows(() => previousFire("0 25 * * *", new Date()), "hour must be within 0-23");
  assertThrows(() => previousFire("0 3 * *", new Date()), "expected 5 fields");
  assertThrows(() => previousFire("x 3 * * *", new Date()), 'cannot read minute field "x"');
});

Deno.test("schedule --once runs when due, skips when not, and catches up a missed run", async () => {
  const p = await ToyProject.create({ count: 5 });
  try {
    const first = await p.run(["schedule", "--once"]);
    assertEquals(first.code, 0, first.stderr);
    assertStringIncludes(first.stderr, "schedule: running total for ");
    assertEquals((await Deno.readTextFile(p.out)).split("\n")[2], "2 4");

    const second = await p.run(["schedule", "--once"]);
    assertEquals(second.code, 0);
    assertStringIncludes(second.stderr, "schedule: not due (last run served ");

    // The machine was off for two days: the last run served an old slot.
    const kv = await Deno.openKv(join(p.cache, "records.sqlite3"));
    const last = await kv.get<{ slot: string }>(["schedule", "last"]);
    const old = new Date(Date.parse(last.value!.slot) - 2 * 86_400_000).toISOString();
    await kv.set(["schedule", "last"], { ...last.value, slot: old });
    kv.close();
    await p.writeConfig({ count: 5, offset: 10 });
    const caughtUp = await p.run(["schedule", "--once"]);
    assertEquals(caughtUp.code, 0, caughtUp.stderr);
    assertStringIncludes(caughtUp.stderr, "schedule: running total for ");
    assertEquals((await Deno.readTextFile(p.out)).split("\n")[2], "2 14");
  } finally {
    await p.cleanup();
  }
});

Deno.test("schedule (long-running) catches up on start, then waits for its cron", async () => {
  const p = await ToyProject.create({ count: 3 });
  try {
    const child = p.command(["schedule"]).spawn();
    const reader = child.stderr.getReader();
    let text = "";
    while (!text.includes("waiting for cron")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    child.kill("SIGINT");
    assertEquals((await child.status).code, 0);
    await reader.cancel();
    await child.stdout.cancel();
    assertStringIncludes(text, "missed while not running; catching up");
    assertStringIncludes(text, 'waiting for cron "0 3 * * *" (UTC) to run total');
    assert((await Deno.readTextFile(p.out)).startsWith("0 0\n1 1\n2 4\n"));
  } finally {
    await p.cleanup();
  }
});

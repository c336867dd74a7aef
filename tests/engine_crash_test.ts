import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { Running } from "./fixtures/running.ts";
import { seededRandom } from "../lib/base/random.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";

/** `LATENTFORGE_TEST_SEED` replays the kill points of a printed seed. */
const SEED = Number(Deno.env.get("LATENTFORGE_TEST_SEED") ?? 20261121);

/** Actions a `--json` run reported as done so far. */
function actionsRan(events: Record<string, unknown>[]): number {
  return events.filter((e) => e.event === "item" && e.status === "ran").length;
}

/** Actions per task that a `--json` run's task-end events report as ran. */
function ranTotal(events: Record<string, unknown>[]): number {
  return events.filter((e) => e.event === "task-end")
    .reduce((n, e) => n + (e.counts as { ran: number }).ran, 0);
}

Deno.test("kill -9 after a seeded number of actions, 20 times, then a final run: same output, nothing corrupt", async () => {
  console.log(`seed ${SEED} (LATENTFORGE_TEST_SEED=${SEED} replays these kill points)`);
  const random = seededRandom(SEED);
  const count = 1200;
  const expected = await ToyProject.cleanOutput(count);
  const p = await ToyProject.create({ count });
  try {
    const killedAfter: number[] = [];
    for (let i = 0; i < 20; i++) {
      const after = 1 + Math.floor(random() * 60);
      const run = new Running(p.command(["run", "--json", "--concurrency", "2"]));
      // A run refused because of the dead run's lease would exit 2 before any action.
      await run.waitFor(
        `${after} actions of attempt ${i + 1}`,
        () => actionsRan(run.events) >= after,
      );
      run.kill("SIGKILL");
      const end = await run.finish();
      assertEquals(end.signal, "SIGKILL", `attempt ${i + 1} ended on its own (${end.code})`);
      killedAfter.push(actionsRan(end.events));
    }
    console.log(`killed after ${killedAfter.join(", ")} actions`);
    const final = await p.run(["run", "--json", "--concurrency", "16"]);
    assertEquals(final.code, 0, final.stderr);
    assertEquals(await Deno.readTextFile(p.out), expected);
    const verify = await p.run(["verify"]);
    assertEquals(verify.code, 0, verify.stdout + verify.stderr);
    assertStringIncludes(verify.stdout, "no corrupt objects");
    const again = await p.run(["run", "--json"]);
    assertEquals([...ToyProject.ran(again).values()].reduce((a, b) => a + b), 0);
  } finally {
    await p.cleanup();
  }
});

Deno.test("a second run while one holds the cache exits 2 naming the holder; --wait waits", async () => {
  const p = await ToyProject.create({ count: 60 });
  const release = `${p.dir}/release`;
  let first: Running | undefined;
  try {
    // The first run holds its lease until the test creates the release file.
    first = new Running(p.command(["run", "--json"], { TOY_HOLD_UNTIL: release }));
    await first.waitForEvent("run-start", (e) => e.event === "run-start");
    const second = await p.run(["run"]);
    assertEquals(second.code, 2, second.stderr);
    assertMatch(
      second.stderr,
      new RegExp(`in use by "run" \\(pid ${first.child.pid} on .+\\) since \\d{4}-`),
    );
    assertStringIncludes(second.stderr, "--wait");
    const gc = await p.run(["gc"]);
    assertEquals(gc.code, 2, "gc must not run beside a run");
    const waiting = new Running(p.command(["run", "--wait", "--json"]));
    await waiting.waitFor(
      "the waiting message",
      () => waiting.stderr.includes(`waiting for pid ${first!.child.pid}`),
    );
    assert(!first.exited, "the first run still holds the cache");
    await Deno.writeTextFile(release, "");
    const firstEnd = await first.finish();
    assertEquals(firstEnd.code, 0, firstEnd.stderr);
    assertEquals(ranTotal(firstEnd.events), 1 + 3 * 60 + 1);
    const waited = await waiting.finish();
    assertEquals(waited.code, 0, waited.stderr);
    // It started after the first run had finished everything: nothing was left to do.
    assertEquals(ranTotal(waited.events), 0);
    assertEquals((await p.run(["verify"])).code, 0);
    assertEquals(await Deno.readTextFile(p.out), await ToyProject.cleanOutput(60));
  } finally {
    await Deno.writeTextFile(release, "").catch(() => {});
    await first?.finish();
    await p.cleanup();
  }
});

Deno.test("SIGINT stops taking work, finishes in-flight writes and exits 130", async () => {
  const p = await ToyProject.create({ count: 200 });
  try {
    const env = { TOY_SLEEP_MS: "30" };
    const run = new Running(p.command(["run", "--json", "--concurrency", "2"], env));
    await run.waitFor("50 actions", () => actionsRan(run.events) >= 50);
    run.kill("SIGINT");
    const out = await run.finish();
    assertEquals(out.code, 130, out.stderr);
    const end = out.events.find((e) => e.event === "run-end");
    assertEquals(end?.status, "interrupted");
    const done = ranTotal(out.events);
    assert(done >= 50 && done < 602, `expected a partial run, ${done} actions ran`);
    assertEquals(out.events.filter((e) => e.event === "item" && e.status === "failed").length, 0);
    assertEquals((await p.run(["verify"])).code, 0);
    const resumed = await p.run(["run", "--json"]);
    assertEquals(resumed.code, 0);
    // Every action ran exactly once over the two runs: nothing finished was redone or lost.
    assertEquals(ranTotal(resumed.events), 602 - done);
    assertEquals(await Deno.readTextFile(p.out), await ToyProject.cleanOutput(200));
  } finally {
    await p.cleanup();
  }
});

Deno.test("gc deletes only what no kept run references", async () => {
  const p = await ToyProject.create({ count: 30 });
  try {
    for (const offset of [1000, 2000, 3000]) {
      await p.writeConfig({ count: 30, offset });
      assertEquals((await p.run(["run"])).code, 0);
    }
    const dry = await p.run(["gc", "--keep-runs", "2", "--dry-run"]);
    assertMatch(dry.stdout, /would free .* in 31 objects/);
    const gc = await p.run(["gc", "--keep-runs", "2", "--json"]);
    const result = JSON.parse(gc.stdout);
    // offset=1000's 30 values and its total report are reachable from no kept run.
    assertEquals(result.objectsDeleted, 31);
    assertEquals((await p.run(["verify"])).code, 0);
    await p.writeConfig({ count: 30, offset: 2000 });
    const kept = await p.run(["run", "--json"]);
    assertEquals(ToyProject.ran(kept).get("offset"), 0, "offset=2000 belongs to a kept run");
    assertStringIncludes(await Deno.readTextFile(p.out), "5 2025\n");
    await p.writeConfig({ count: 30, offset: 1000 });
    const gone = await p.run(["run", "--json"]);
    assertEquals(ToyProject.ran(gone).get("offset"), 30, "offset=1000 was collected");
    assertStringIncludes(await Deno.readTextFile(p.out), "5 1025\n");
  } finally {
    await p.cleanup();
  }
});

Deno.test("verify quarantines a corrupt object and the next run recomputes it", async () => {
  const p = await ToyProject.create({ count: 10 });
  try {
    assertEquals((await p.run(["run"])).code, 0);
    const objects = `${p.cache}/objects`;
    let victim = "";
    for await (const shard of Deno.readDir(objects)) {
      for await (const f of Deno.readDir(`${objects}/${shard.name}`)) {
        const text = await Deno.readTextFile(`${objects}/${shard.name}/${f.name}`);
        if (text === "49") victim = `${objects}/${shard.name}/${f.name}`;
      }
    }
    assert(victim, "the object holding 49 (square of 7) exists");
    await Deno.writeTextFile(victim, "48");
    const verify = await p.run(["verify"]);
    assertEquals(verify.code, 1);
    assertStringIncludes(verify.stdout, "corrupt: ");
    assertStringIncludes(verify.stdout, "records invalidated");
    const rerun = await p.run(["run", "--json"]);
    assertEquals(rerun.code, 0);
    assertEquals(ToyProject.ran(rerun).get("square"), 1);
    assertStringIncludes(await Deno.readTextFile(p.out), "7 49\n");
    assertEquals((await p.run(["verify"])).code, 0);
  } finally {
    await p.cleanup();
  }
});

import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";

Deno.test("changing one config field reruns exactly the tasks that depend on it", async () => {
  const p = await ToyProject.create({ count: 50 });
  try {
    const first = await p.run(["run", "--json"]);
    assertEquals(first.code, 0, first.stderr);
    assertEquals(
      Object.fromEntries(ToyProject.ran(first)),
      { numbers: 1, square: 50, scale: 50, offset: 50, total: 1 },
    );
    const before = await Deno.readTextFile(p.out);
    assertStringIncludes(before, "7 49\n");

    const noop = await p.run(["run", "--json"]);
    assertEquals(noop.code, 0);
    assertEquals([...ToyProject.ran(noop).values()].reduce((a, b) => a + b), 0);

    const explained = await p.run(["explain", "offset", "--set", "toy.offset=3"]);
    assertEquals(explained.code, 0, explained.stderr);
    assertStringIncludes(explained.stdout, "50 of 50 items would rerun");
    assertStringIncludes(explained.stdout, "config toy.offset: 0 → 3");
    const upToDate = await p.run(["explain", "scale", "--set", "toy.offset=3"]);
    assertStringIncludes(upToDate.stdout, "scale: up to date (50 items cached)");
    const json = await p.run(["explain", "offset", "7", "--json", "--set", "toy.offset=3"]);
    const parsed = JSON.parse(json.stdout);
    assertEquals(parsed.upToDate, false);
    assertEquals(parsed.reasons, [{ kind: "config", text: "config toy.offset: 0 → 3" }]);

    await p.writeConfig({ count: 50, offset: 3 });
    const second = await p.run(["run", "--json"]);
    assertEquals(second.code, 0, second.stderr);
    assertEquals(
      Object.fromEntries(ToyProject.ran(second)),
      { numbers: 0, square: 0, scale: 0, offset: 50, total: 1 },
    );
    assertStringIncludes(await Deno.readTextFile(p.out), "7 52\n");

    // Going back to the old value finds the superseded records: nothing recomputes.
    await p.writeConfig({ count: 50 });
    const back = await p.run(["run", "--json"]);
    assertEquals(ToyProject.ran(back).get("offset"), 0);
    assertEquals(await Deno.readTextFile(p.out), before);
  } finally {
    await p.cleanup();
  }
});

Deno.test("editing a task's source file reruns that task and its dependants only", async () => {
  const p = await ToyProject.create({ count: 20 });
  try {
    assertEquals((await p.run(["run"])).code, 0);
    const file = `${p.dir}/tasks/scale.ts`;
    const source = await Deno.readTextFile(file);
    await Deno.writeTextFile(
      file,
      source.replace("v * ctx.config.toy.scale", "v * ctx.config.toy.scale * 10"),
    );
    const why = await p.run(["explain", "scale", "3"]);
    assertStringIncludes(why.stdout, "source tasks/scale.ts changed");
    const r = await p.run(["run", "--json"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(
      Object.fromEntries(ToyProject.ran(r)),
      // Item 0 scales to 0 either way, so its offset input is unchanged and stays cached.
      { numbers: 0, square: 0, scale: 20, offset: 19, total: 1 },
    );
    assertStringIncludes(await Deno.readTextFile(p.out), "3 90\n");
  } finally {
    await p.cleanup();
  }
});

Deno.test("one permanently failing item among 1,000: 999 recorded, exit 1, rerun retries only it", async () => {
  const p = await ToyProject.create({ count: 1000, fail_ids: ["617"] });
  try {
    const first = await p.run(["run", "--json"], { TOY_FLAKY: "1" });
    assertEquals(first.code, 1, first.stderr);
    const failed = first.events.filter((e) => e.event === "item" && e.status === "failed");
    assertEquals(failed.map((e) => [e.task, e.item]), [["square", "617"]]);
    assertStringIncludes(String(failed[0].reason), "item 617 is configured to fail");
    // Flaky items (value % 7 === 3: 143 of them) fail twice each, then succeed: 286 retries.
    const retries = first.events.filter((e) => e.event === "retry");
    const flaky = Array.from({ length: 1000 }, (_, v) => v).filter((v) => v % 7 === 3);
    assertEquals(flaky.length, 143);
    assertEquals(
      retries.map((e) => `${e.task} ${e.item} attempt ${e.attempt}: ${e.reason}`).sort(),
      flaky.flatMap((v) => [1, 2].map((n) => `square ${v} attempt ${n}: flake ${n}`)).sort(),
    );
    assertEquals(ToyProject.ran(first).get("offset"), 999);
    const out = await Deno.readTextFile(p.out);
    assertEquals(out.split("\n").filter((l) => /^\d+ /.test(l)).length, 999);
    assertStringIncludes(out, "failed: 617\n");

    const status = JSON.parse((await p.run(["status", "--json"])).stdout);
    const square = status.tasks.find((t: { task: string }) => t.task === "square");
    assertEquals([square.items, square.cached, square.stale, square.failed], [1000, 999, 1, 1]);

    const again = await p.run(["run", "--json"]);
    assertEquals(again.code, 1);
    assertEquals(ToyProject.ran(again).get("square"), 0);
    const retried = again.events.filter((e) => e.event === "item");
    assertEquals(retried.map((e) => [e.item, e.status]), [["617", "failed"]]);

    await p.writeConfig({ count: 1000 });
    const fixed = await p.run(["run", "--json"]);
    assertEquals(fixed.code, 0, fixed.stderr);
    assertEquals(ToyProject.ran(fixed).get("square"), 1000, "fail_ids is in square's config slice");
  } finally {
    await p.cleanup();
  }
});

Deno.test("dry run executes nothing and says why", async () => {
  const p = await ToyProject.create({ count: 10 });
  try {
    const fresh = await p.run(["run", "--dry-run"]);
    assertEquals(fresh.code, 0, fresh.stderr);
    assertMatch(
      fresh.stderr,
      /square ok: .*\n\s+may run all: its items are unknown until numbers runs/,
    );
    await Deno.stat(p.out).then(() => assert(false, "dry run wrote output"), () => {});
    assertEquals((await p.run(["run"])).code, 0);
    const plan = await p.run(["run", "--dry-run", "--set", "toy.scale=2"]);
    assertMatch(
      plan.stderr,
      /scale ok: 0\/10 \(0 ran, 0 cached\)\n\s+would run 10: config toy.scale: 1 → 2/,
    );
    const status = JSON.parse((await p.run(["status", "--json", "--set", "toy.scale=2"])).stdout);
    assertEquals(
      status.tasks.map((t: { stale: number | null }) => t.stale),
      [0, 0, 10, 10, 1],
    );
  } finally {
    await p.cleanup();
  }
});

Deno.test("an invalid config or --set names the field, the expected type and what was found", async () => {
  const p = await ToyProject.create({ count: 3 });
  try {
    const r = await p.run(["run", "--set", "toy.scale=abc"]);
    assertEquals(r.code, 2);
    assertStringIncludes(r.stderr, "toy.scale: Invalid input: expected number, received string");
    assertStringIncludes(r.stderr, 'found "abc"');
    const target = await p.run(["run", "nope"]);
    assertEquals(target.code, 2);
    assertStringIncludes(target.stderr, 'unknown task "nope"; expected one of: numbers, square');
    await p.writeConfig({ count: 3, colour: "red" });
    const unknown = await p.run(["run"]);
    assertEquals(unknown.code, 2);
    assertStringIncludes(unknown.stderr, "unknown field in toy: colour");
  } finally {
    await p.cleanup();
  }
});

Deno.test("dag draws the graph as text, mermaid and dot", async () => {
  const p = await ToyProject.create({ count: 1 });
  try {
    const text = await p.run(["dag"]);
    assertStringIncludes(text.stdout, "offset   per item  offset each number ← scale");
    const mermaid = await p.run(["dag", "--format", "mermaid"]);
    assertStringIncludes(mermaid.stdout, "flowchart LR\n");
    assertStringIncludes(mermaid.stdout, "  offset --> total");
    const dot = await p.run(["dag", "--format", "dot"]);
    assertStringIncludes(dot.stdout, '"square" -> "scale";');
  } finally {
    await p.cleanup();
  }
});

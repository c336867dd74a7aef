import { assert, assertEquals } from "./fixtures/assert.ts";
import type { Reporter, RunEvent } from "../lib/dag/events.ts";
import { TaskGraph } from "../lib/dag/graph.ts";
import { runPipeline } from "../lib/dag/plan.ts";
import { type RunFacts, RunFactsCollector } from "../lib/dag/run_facts.ts";
import { aggregate, each } from "../lib/dag/task.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { openRecords } from "../lib/store/records.ts";

Deno.test("run facts: wall time from each task's start to its end, item time summed, counts", () => {
  let t = Date.UTC(2026, 10, 21, 2, 10, 0);
  const facts = new RunFactsCollector({ now: () => t, aggregates: ["list", "pack"] });
  const at = (ms: number, event: RunEvent) => {
    t += ms;
    facts.observe(event);
  };
  const counts = (ran: number, cached: number, failed = 0) => ({
    total: ran + cached + failed,
    ran,
    cached,
    failed,
    final: true,
  });
  at(0, {
    event: "run-start",
    run: 7,
    targets: ["pack"],
    tasks: ["list", "work", "idle", "pack"],
    dryRun: false,
  });
  at(0, { event: "task-start", task: "list" });
  at(250, { event: "task-end", task: "list", status: "ok", counts: counts(0, 1) });
  at(0, { event: "task-start", task: "work" });
  at(0, { event: "task-start", task: "idle" });
  at(100, { event: "task-end", task: "idle", status: "ok", counts: counts(0, 3) });
  // Three items run side by side for 4 s each; one more fails.
  at(3900, { event: "item", task: "work", item: "a", status: "ran", ms: 4000 });
  at(0, { event: "item", task: "work", item: "b", status: "ran", ms: 4000 });
  at(0, { event: "item", task: "work", item: "c", status: "ran", ms: 4000 });
  at(0, { event: "item", task: "work", item: "d", status: "failed", ms: 10, reason: "bad" });
  at(0, { event: "task-end", task: "work", status: "ok", counts: counts(3, 1, 1) });
  at(0, { event: "task-start", task: "pack" });
  t += 1500;
  const snap = facts.snapshot("pack");
  assertEquals(snap, {
    format: "latentforge.run-facts",
    version: 1,
    run: 7,
    started: "2026-11-21T02:10:00.000Z",
    built: "2026-11-21T02:10:05.750Z",
    seconds: 5.75,
    tasks: [
      {
        task: "list",
        status: "ok",
        start_s: 0,
        wall_s: 0.25,
        item_s: null,
        ran: 0,
        cached: 1,
        failed: 0,
        total: 1,
        items_per_s: null,
        cache_hit: true,
      },
      {
        task: "work",
        status: "ok",
        start_s: 0.25,
        wall_s: 4,
        item_s: 12,
        ran: 3,
        cached: 1,
        failed: 1,
        total: 5,
        items_per_s: 0.75,
        cache_hit: false,
      },
      {
        task: "idle",
        status: "ok",
        start_s: 0.25,
        wall_s: 0.1,
        item_s: 0,
        ran: 0,
        cached: 3,
        failed: 0,
        total: 3,
        items_per_s: null,
        cache_hit: true,
      },
      {
        task: "pack",
        status: "running",
        start_s: 4.25,
        wall_s: 1.5,
        item_s: null,
        ran: 1,
        cached: 0,
        failed: 0,
        total: 1,
        items_per_s: null,
        cache_hit: false,
      },
    ],
  });
});

interface DemoConfig {
  n: number;
  label: string;
}

/** A pipeline whose last task publishes, recording what it was given. */
function pipeline(published: (RunFacts | null)[]) {
  const list = aggregate<DemoConfig>({
    name: "list",
    deps: [],
    config: ["n"],
    version: "1",
    source: import.meta.url,
    describe: "list n items",
    run: (ctx) => Promise.resolve({ objects: {}, meta: ctx.config.n }),
  });
  const square = each<DemoConfig>({
    name: "square",
    deps: ["list"],
    config: [],
    version: "1",
    source: import.meta.url,
    describe: "square each",
    items: (_ctx, up) =>
      Promise.resolve(
        Array.from({ length: up.aggregate("list").meta as number }, (_, i) => ({
          id: String(i),
          params: i,
        })),
      ),
    run: (_ctx, item) => Promise.resolve({ objects: {}, meta: (item.params as number) ** 2 }),
  });
  const pack = aggregate<DemoConfig>({
    name: "pack",
    deps: ["square"],
    config: ["label"],
    version: "1",
    source: import.meta.url,
    describe: "sum and label",
    run: async (ctx, up) => {
      let sum = 0;
      for await (const { out } of up.items("square")) sum += out.meta as number;
      return { objects: {}, meta: `${ctx.config.label} ${sum}` };
    },
    publish: (_ctx, _output, run) => {
      published.push(run);
      return Promise.resolve();
    },
  });
  return new TaskGraph([list, square, pack]);
}

const quiet: Reporter = { emit() {}, progress() {}, close() {} };

Deno.test("publish gets the facts of the run that built the output, the same on a cache hit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lf_facts_" });
  const records = await openRecords(dir);
  try {
    const store = new ObjectStore(dir);
    const published: (RunFacts | null)[] = [];
    const graph = pipeline(published);
    const run = async (config: DemoConfig) => {
      const r = await runPipeline({
        graph,
        targets: ["pack"],
        config,
        store,
        records,
        reporter: quiet,
        signal: new AbortController().signal,
      });
      assertEquals(r.exitCode, 0);
      return r;
    };
    const first = await run({ n: 5, label: "sum" });
    const built = published[0]!;
    assertEquals(built.run, first.run);
    assertEquals(built.tasks.map((t) => [t.task, t.ran, t.cached, t.cache_hit]), [
      ["list", 1, 0, false],
      ["square", 5, 0, false],
      ["pack", 1, 0, false],
    ]);
    assertEquals(built.tasks[2].status, "running");
    assert(built.tasks.every((t) => t.wall_s !== null && t.wall_s >= 0));

    // Nothing changed: the output is a cache hit and is republished with the same facts.
    const second = await run({ n: 5, label: "sum" });
    assert(second.run !== first.run);
    assertEquals(second.tasks.get("pack")!.counts.cached, 1);
    assertEquals(published[1], built);

    // A new label reruns pack only: its facts say the others came from the cache.
    const third = await run({ n: 5, label: "total" });
    const rebuilt = published[2]!;
    assertEquals(rebuilt.run, third.run);
    assertEquals(rebuilt.tasks.map((t) => [t.task, t.ran, t.cached, t.cache_hit]), [
      ["list", 0, 1, true],
      ["square", 0, 5, true],
      ["pack", 1, 0, false],
    ]);
    // Back to the first label: the superseded output returns with the facts of its own run.
    await run({ n: 5, label: "sum" });
    assertEquals(published[3], built);
  } finally {
    records.close();
    await Deno.remove(dir, { recursive: true });
  }
});

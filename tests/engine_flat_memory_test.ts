/**
 * Memory stays flat in the number of items: bench noop's eight-task pipeline of trivial actions
 * over 40,000 items (320,000 actions), the populating run and the no-op run, completes with
 * V8's heap capped at 96 MB — an engine that kept each item's outputs, records or plans in
 * memory needs several kilobytes per item (hundreds of megabytes here) and dies at the cap.
 * A plan (`run --dry-run`) under the same cap counts every item as it goes.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { runNoop } from "./fixtures/noop_run.ts";

const ITEMS = 40_000;
const HEAP_MB = 96;

const pipeline = (dir: string, ...args: string[]) => runNoop(dir, { heapMb: HEAP_MB, args });

Deno.test(`${ITEMS} items × 8 tasks run, rerun and plan with V8's heap capped at ${HEAP_MB} MB`, async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-flat-" });
  try {
    await Deno.writeTextFile(join(dir, "bench.json"), JSON.stringify({ items: ITEMS }));
    const first = await pipeline(dir);
    assertEquals(first.code, 0, first.stderr.slice(-2000));
    assertMatch(
      first.stderr,
      new RegExp(`stage6 ok: ${ITEMS}/${ITEMS} \\(${ITEMS} ran, 0 cached\\)`),
    );
    const noop = await pipeline(dir);
    assertEquals(noop.code, 0, noop.stderr.slice(-2000));
    assertMatch(noop.stderr, /summary ok: 1\/1 \(0 ran, 1 cached\)/);
    // A plan that reruns every item: each item's reasons are counted, not kept.
    const plan = await pipeline(dir, "--dry-run", "--force", "stage1");
    assertEquals(plan.code, 0, plan.stderr.slice(-2000));
    assertMatch(plan.stderr, new RegExp(`would run ${ITEMS}: --force`));
    assert(Number.isFinite(first.rss) && Number.isFinite(noop.rss), "the runs report peak RSS");
    console.log(
      `peak RSS: populating ${first.rss.toFixed(0)} MB, no-op ${noop.rss.toFixed(0)} MB, ` +
        `plan ${plan.rss.toFixed(0)} MB`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

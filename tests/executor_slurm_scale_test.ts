/**
 * A Slurm wave of many items: bench noop's pipeline with its last per-item stage run as a job
 * array, the coordinator's V8 heap capped at 64 MB. The coordinator spools the wave's actions
 * to disk, writes one shard object per array task, imports the results the workers announce
 * against that list, and removes the results, the list and the progress logs once the records
 * hold them. (At this scale the engine's own fixed memory dominates the cap; `deno task bench
 * slurm-scale` measures the coordinator at 1.3 M items.)
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { slurmRequirement, slurmSuite } from "./fixtures/slurm.ts";
import { readDirOrNull } from "../lib/base/fs.ts";
import { runNoop } from "./fixtures/noop_run.ts";

const ITEMS = 30_000;
const ARRAY_TASKS = 4;
const HEAP_MB = 64;
const slurmCase = slurmSuite("a Slurm wave of many items", await slurmRequirement());

/** Files under `dir`, recursively (0 when it does not exist). */
async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const e of (await readDirOrNull(dir)) ?? []) {
    n += e.isDirectory ? await countFiles(join(dir, e.name)) : 1;
  }
  return n;
}

slurmCase(
  `${ITEMS} items on ${ARRAY_TASKS} array tasks with the coordinator's heap capped at ${HEAP_MB} MB`,
  async (cluster) => {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-slurm-scale-" });
    try {
      await Deno.writeTextFile(
        join(dir, "bench.json"),
        JSON.stringify({
          items: ITEMS,
          executor: {
            kind: "slurm",
            tasks: ["stage6"],
            array_tasks: ARRAY_TASKS,
            poll_s: 0.5,
            slurm: { probe_shared: false },
          },
        }),
      );
      const first = await runNoop(dir, { env: cluster.env, heapMb: HEAP_MB });
      assertEquals(first.code, 0, first.stderr.slice(-3000));
      assertMatch(
        first.stderr,
        new RegExp(
          `submitted stage6 as Slurm job \\d+ \\(array 0,1,2,3 of ${ARRAY_TASKS} ` +
            `shards, ${ITEMS} items\\)`,
        ),
      );
      assertMatch(
        first.stderr,
        new RegExp(`stage6 ok: ${ITEMS}/${ITEMS} \\(${ITEMS} ran, 0 cached\\)`),
      );
      // Each array task ran its own quarter, read from its shard object.
      const logs = join(dir, "cache", "logs", "slurm");
      const summaries = [];
      for (const e of (await readDirOrNull(logs)) ?? []) {
        const text = await Deno.readTextFile(join(logs, e.name));
        const m = /worker \d+\/\d+: (\{.*\})/.exec(text);
        if (m) summaries.push(JSON.parse(m[1]));
      }
      assertEquals(summaries.length, ARRAY_TASKS, "every array task reports what it did");
      for (const s of summaries) {
        assertEquals(s, {
          assigned: ITEMS / ARRAY_TASKS,
          alreadyDone: 0,
          succeeded: ITEMS / ARRAY_TASKS,
          failed: 0,
        });
      }
      // The results are imported and gone; so are the wave's list and progress logs.
      assertEquals(await countFiles(join(dir, "cache", "results")), 0);
      assertEquals(await countFiles(join(dir, "cache", "waves")), 0);
      assertEquals(await countFiles(join(dir, "cache", "tmp")), 0);
      // Nothing is left to run: the rerun submits nothing.
      const again = await runNoop(dir, { env: cluster.env });
      assertEquals(again.code, 0, again.stderr.slice(-3000));
      assertEquals(/as Slurm job/.test(again.stderr), false, again.stderr.slice(-2000));
      assertMatch(
        again.stderr,
        new RegExp(`stage6 ok: ${ITEMS}/${ITEMS} \\(0 ran, ${ITEMS} cached\\)`),
      );
      assert(/summary ok: 1\/1 \(0 ran, 1 cached\)/.test(again.stderr), again.stderr.slice(-2000));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

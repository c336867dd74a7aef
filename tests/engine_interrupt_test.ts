/**
 * An item an interrupted run left unfinished is not a failure: Ctrl-C during optimize records
 * nothing as failed, and `status` and `explain` say the item was interrupted at the step its
 * checkpoint holds and resumes from it — which the next run does.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { Running, someFile } from "./fixtures/running.ts";
import { mirroredConfig, removeTree, tasksRan } from "./fixtures/project.ts";
import { writeTinyVae } from "./fixtures/vae.ts";
import { openRecords } from "../lib/store/records.ts";

Deno.test({
  name: "Ctrl-C during optimize: no failure recorded; status and explain say where it resumes",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const mirror = await startMirror({ count: 4, imageSize: 64, seed: 8 });
  const dir = await Deno.makeTempDir({ prefix: "latentforge-interrupt-" });
  try {
    const vae = await writeTinyVae(join(dir, "vae"));
    const p = await PipelineProject.create(mirroredConfig({
      preprocess: { size: 64 },
      model: { scaling_factor: 1.0, providers: ["cpu"], threads: 1 },
      // Never converges early: every image runs its 150 steps, so Ctrl-C lands mid-way.
      optimize: { lr: 0.05, max_steps: 150, tolerance: 0, batch_size: 2, checkpoint_every: 5 },
      package: { formats: ["npz"], samples: 0 },
    }, { mirror, vae, labels: false, pin: ["spec"] }));
    try {
      const run = new Running(p.command(["run", "--json"]));
      const checkpoints = join(p.cache, "checkpoints", "optimize");
      await run.waitForState(
        "an optimize checkpoint",
        () => someFile(checkpoints, (name) => !name.includes(".tmp-")),
      );
      run.kill("SIGINT");
      const stopped = await run.finish();
      assertEquals(stopped.code, 130, stopped.stderr);
      const records = await openRecords(p.cache);
      try {
        assertEquals((await records.failures("optimize")).size, 0, "a failure was recorded");
      } finally {
        records.close();
      }
      const status = await p.run(["status", "--json"]);
      assertEquals(status.code, 0, status.stderr);
      const row = (JSON.parse(status.stdout).tasks as Record<string, unknown>[])
        .find((r) => r.task === "optimize")!;
      assertEquals(row.failed, 0);
      assert((row.interrupted as number) > 0, JSON.stringify(row));
      const text = await p.run(["status"]);
      assertMatch(
        text.stdout,
        /optimize: \d+ items? interrupted, resumes? from (its|their) checkpoints?/,
      );
      const ids = (await Array.fromAsync(Deno.readDir(checkpoints))).length;
      assert(ids > 0);
      // explain names the step of an interrupted item.
      const explained = await p.run(["explain", "optimize", "--json"]);
      const reasons = (JSON.parse(explained.stdout).reasons as { text: string; items: string[] }[])
        .filter((r) => r.text.startsWith("interrupted"));
      assert(reasons.length > 0, explained.stdout);
      assertMatch(reasons[0].text, /^interrupted at step \d+\/150, resumes from its checkpoint$/);
      const one = await p.run(["explain", "optimize", reasons[0].items[0]]);
      assertMatch(one.stdout, /interrupted at step \d+\/150, resumes from its checkpoint/);

      const resumed = await p.run(["run", "--json"]);
      assertEquals(resumed.code, 0, resumed.stderr);
      assert((tasksRan(resumed).get("optimize") ?? 0) > 0);
      const after = JSON.parse((await p.run(["status", "--json"])).stdout).tasks as {
        task: string;
        interrupted: number;
        stale: number;
      }[];
      assertEquals(
        after.map((r) => [r.task, r.interrupted, r.stale]).filter(([, i, s]) => i || s),
        [],
      );
    } finally {
      await p.cleanup();
    }
  } finally {
    await removeTree(dir);
    await mirror.close();
  }
});

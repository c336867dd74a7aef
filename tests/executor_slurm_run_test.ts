import { assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { slurmRequirement, slurmSuite } from "./fixtures/slurm.ts";
import { parse } from "./fixtures/project.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";

const slurmCase = slurmSuite("run --executor slurm", await slurmRequirement());

const executor = {
  kind: "slurm",
  tasks: ["scale"],
  array_tasks: 3,
  poll_s: 0.5,
  retries: 2,
};

/** Starts a run and resolves with its Slurm job id once the job is submitted. */
async function startSlurmRun(p: ToyProject, env: Record<string, string>) {
  const child = p.command(["run", "--json"], env).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  let jobId = 0;
  while (!jobId) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`run ended before submitting:\n${text}`);
    text += new TextDecoder().decode(value);
    const m = /as Slurm job (\d+)/.exec(text);
    if (m) jobId = Number(m[1]);
  }
  const rest = (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += new TextDecoder().decode(value);
    }
  })();
  return { child, jobId, output: rest };
}

async function traceCounts(path: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const text = await Deno.readTextFile(path).catch(() => "");
  for (const id of text.split("\n").filter(Boolean)) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

slurmCase(
  "run --executor slurm with 3 array tasks gives the same output as a local run",
  async (cluster) => {
    const p = await ToyProject.create({ count: 12 });
    try {
      await p.writeConfig({ count: 12 }, { executor });
      const r = await p.run(["run", "--json"], cluster.env);
      assertEquals(r.code, 0, r.stderr + r.stdout);
      const logs = r.events.filter((e) => e.event === "log").map((e) => e.message as string);
      assertMatch(
        logs.join("\n"),
        /submitted scale as Slurm job \d+ \(array 0,1,2 of 3 shards, 12 items\)/,
      );
      assertEquals(ToyProject.ran(r).get("scale"), 12);
      assertEquals(await Deno.readTextFile(p.out), await ToyProject.cleanOutput(12));
      const again = await p.run(["run", "--json"], cluster.env);
      assertEquals([...ToyProject.ran(again).values()].reduce((a, b) => a + b), 0);
    } finally {
      await p.cleanup();
    }
  },
);

slurmCase(
  "a cancelled array task's items are resubmitted; finished items are not recomputed",
  async (cluster) => {
    const p = await ToyProject.create({ count: 18 });
    const trace = `${p.dir}/trace.txt`;
    try {
      await p.writeConfig({ count: 18 }, { executor });
      const run = await startSlurmRun(p, {
        ...cluster.env,
        TOY_SCALE_SLEEP_MS: "1000",
        TOY_TRACE: trace,
      });
      // Cancel the second array task once the first items are done: it has six items and runs
      // two at a time, so items are still queued (or it is still pending). A cancelled worker
      // finishes its in-flight items (Slurm sends SIGTERM first) and takes no new ones.
      while ((await traceCounts(trace)).size === 0) await new Promise((r) => setTimeout(r, 100));
      const scancel = await new Deno.Command("scancel", {
        args: [`${run.jobId}_1`],
        env: cluster.env,
      }).output();
      assertEquals(scancel.code, 0);
      const status = await run.child.status;
      const out = parse(status.code, new TextEncoder().encode(await run.output), new Uint8Array());
      assertEquals(status.code, 0, await Deno.readTextFile(`${p.dir}/trace.txt`).catch(() => ""));
      const logs = out.events.filter((e) => e.event === "log").map((e) => e.message).join("\n");
      assertMatch(
        logs,
        new RegExp(`array task ${run.jobId}_1 (ended CANCELLED|is gone from Slurm \\(last seen)`),
      );
      assertMatch(logs, /resubmission 1\)/);
      assertEquals(await Deno.readTextFile(p.out), await ToyProject.cleanOutput(18));
      const counts = await traceCounts(trace);
      assertEquals(counts.size, 18);
      assertEquals([...counts.values()].filter((n) => n > 1), [], "no item was computed twice");
    } finally {
      await p.cleanup();
    }
  },
);

slurmCase(
  "SIGINT to the coordinator cancels the job; a rerun resumes from what workers finished",
  async (cluster) => {
    const p = await ToyProject.create({ count: 12 });
    const trace = `${p.dir}/trace.txt`;
    try {
      await p.writeConfig({ count: 12 }, { executor });
      const run = await startSlurmRun(p, {
        ...cluster.env,
        TOY_SCALE_SLEEP_MS: "1000",
        TOY_TRACE: trace,
      });
      while ((await traceCounts(trace)).size === 0) await new Promise((r) => setTimeout(r, 100));
      run.child.kill("SIGINT");
      assertEquals((await run.child.status).code, 130);
      await run.output;
      const squeue = await new Deno.Command("squeue", {
        args: ["-h", "-j", String(run.jobId), "-o", "%i %T"],
        env: cluster.env,
      }).output();
      const live = new TextDecoder().decode(squeue.stdout).split("\n")
        .filter((l) => /RUNNING|PENDING/.test(l));
      assertEquals(live, [], "the job was cancelled");
      const before = await traceCounts(trace);
      const rerun = await p.run(["run", "--json"], { ...cluster.env, TOY_TRACE: trace });
      assertEquals(rerun.code, 0, rerun.stderr);
      assertEquals(await Deno.readTextFile(p.out), await ToyProject.cleanOutput(12));
      const after = await traceCounts(trace);
      for (const [id, n] of before) {
        assertEquals(after.get(id), n, `item ${id} finished before the interrupt and ran again`);
      }
    } finally {
      await p.cleanup();
    }
  },
);

Deno.test("--executor slurm without sbatch on PATH fails clearly", async () => {
  const p = await ToyProject.create({ count: 2 });
  try {
    await p.writeConfig({ count: 2 }, { executor });
    const empty = await Deno.makeTempDir();
    const r = await p.run(["run"], { PATH: empty });
    assertEquals(r.code, 2);
    assertStringIncludes(r.stderr, "sbatch not found on PATH");
    await Deno.remove(empty);
  } finally {
    await p.cleanup();
  }
});

Deno.test("a plan with --executor slurm says how the actions would be split, without Slurm", async () => {
  const p = await ToyProject.create({ count: 12 });
  const empty = await Deno.makeTempDir();
  try {
    await p.writeConfig({ count: 12 }, { executor: { ...executor, array_tasks: 5 } });
    // Built locally first, so that the plan knows scale's items; then scale is forced.
    const built = await p.run(["run", "--executor", "local"]);
    assertEquals(built.code, 0, built.stderr);
    const force = ["run", "--dry-run", "--force", "scale"];
    // No Slurm command on PATH: a plan calls none.
    const plan = await p.run([...force, "--json"], { PATH: empty });
    assertEquals(plan.code, 0, plan.stderr + plan.stdout);
    const scale = plan.events.find((e) => e.event === "task-end" && e.task === "scale");
    assertEquals(scale?.remote, { executor: "slurm", actions: 12, shards: 5 });
    // The other tasks stay local: no such line for them.
    const others = plan.events.filter((e) => e.event === "task-end" && e.task !== "scale");
    assertEquals(others.filter((e) => e.remote !== undefined), []);
    const text = await p.run(force, { PATH: empty });
    assertStringIncludes(text.stderr + text.stdout, "on slurm: 12 as 5 array tasks");
    // More array tasks than items: one array task per item, as a run splits them.
    await p.writeConfig({ count: 12 }, { executor: { ...executor, array_tasks: 20 } });
    const few = await p.run([...force, "--json"], { PATH: empty });
    const small = few.events.find((e) => e.event === "task-end" && e.task === "scale");
    assertEquals(small?.remote, { executor: "slurm", actions: 12, shards: 12 });
  } finally {
    await Deno.remove(empty);
    await p.cleanup();
  }
});

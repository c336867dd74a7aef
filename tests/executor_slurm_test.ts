import { expandArrayIndices } from "../lib/executor/slurm_array_indices.ts";
import { cancel } from "../lib/executor/slurm_cancel.ts";
import { SlurmError } from "../lib/executor/slurm_error.ts";
import { probeSharedPath } from "../lib/executor/slurm_probe.ts";
import { type ArrayTaskState, jobStates, waitForArray } from "../lib/executor/slurm_states.ts";
import { submitArray } from "../lib/executor/slurm_submit.ts";
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./fixtures/assert.ts";
import { slurmRequirement, slurmSuite } from "./fixtures/slurm.ts";

const slurmCase = slurmSuite("the Slurm client functions", await slurmRequirement());

/** Generous: the tests share the node's two CPUs with whatever else is running. */
const WAIT = { timeoutMs: 45_000, pollMs: 250 };

/** A temp directory removed when its `await using` scope ends, whether the test passed or not. */
async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "latentforge-slurm-test-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

function summary(states: Map<number, ArrayTaskState>): Record<number, string> {
  return Object.fromEntries(
    [...states].map(([index, task]) => [
      index,
      task.exitCode === undefined ? task.state : `${task.state} ${task.exitCode}:${task.signal}`,
    ]),
  );
}

async function waitUntil(
  jobId: number,
  done: (states: Map<number, ArrayTaskState>) => boolean,
  what: string,
  env: Record<string, string>,
): Promise<Map<number, ArrayTaskState>> {
  const deadline = Date.now() + WAIT.timeoutMs;
  while (Date.now() < deadline) {
    const states = await jobStates(jobId, { env });
    if (done(states)) return states;
    await new Promise((resolve) => setTimeout(resolve, WAIT.pollMs));
  }
  throw new Error(`job ${jobId}: ${what} did not happen within ${WAIT.timeoutMs} ms`);
}

slurmCase(
  "submitArray runs every task of a 3-task array, each with its own index",
  async (cluster) => {
    await using tmp = await tempDir();
    const dir = tmp.path;
    const jobId = await submitArray({
      scriptText: `#!/bin/sh\nprintf '%s %s of %s\\n' "$GREETING" "$SLURM_ARRAY_TASK_ID" ` +
        `"$SLURM_ARRAY_JOB_ID" > "${dir}/task-$SLURM_ARRAY_TASK_ID.txt"\n`,
      env: { ...cluster.env, GREETING: "task" },
      arraySize: 3,
      jobName: "latentforge-test-array",
      partition: cluster.partition,
      timeLimit: 2,
      cpusPerTask: 1,
      output: `${dir}/slurm-%A_%a.out`,
    });
    const states = await waitForArray(jobId, { ...WAIT, env: cluster.env });
    assertEquals(summary(states), { 0: "COMPLETED 0:0", 1: "COMPLETED 0:0", 2: "COMPLETED 0:0" });
    for (const index of [0, 1, 2]) {
      assertEquals(
        await Deno.readTextFile(`${dir}/task-${index}.txt`),
        `task ${index} of ${jobId}\n`,
      );
      await Deno.stat(`${dir}/slurm-${jobId}_${index}.out`); // the output pattern was applied
    }
  },
);

slurmCase(
  "a task that exits 3 is reported FAILED with exit code 3; the others COMPLETED",
  async (cluster) => {
    await using tmp = await tempDir();
    const dir = tmp.path;
    const script = `${dir}/task.sh`;
    await Deno.writeTextFile(
      script,
      `#!/bin/sh\ntouch "${dir}/ran-$SLURM_ARRAY_TASK_ID"\n[ "$SLURM_ARRAY_TASK_ID" = 4 ] && exit 3\nexit 0\n`,
    );
    const jobId = await submitArray({
      env: cluster.env,
      scriptPath: script,
      indices: [0, 4],
      jobName: "latentforge-test-exit",
      output: "/dev/null",
      cwd: dir,
    });
    const states = await waitForArray(jobId, { ...WAIT, env: cluster.env });
    assertEquals(summary(states), { 0: "COMPLETED 0:0", 4: "FAILED 3:0" });
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "ran-0",
      "ran-4",
      "task.sh",
    ]);
  },
);

slurmCase(
  "cancelling one running task (JOB_ID_1) reports it CANCELLED while the others complete",
  async (cluster) => {
    await using tmp = await tempDir();
    const dir = tmp.path;
    const jobId = await submitArray({
      env: cluster.env,
      // Task 1 becomes the sleep itself: once it is cancelled no shell is left to go on to the
      // touch, whichever process the signal reaches first.
      scriptText: `#!/bin/sh\n[ "$SLURM_ARRAY_TASK_ID" = 1 ] && exec sleep 60\n` +
        `touch "${dir}/done-$SLURM_ARRAY_TASK_ID"\n`,
      arraySize: 3,
      jobName: "latentforge-test-cancel",
      output: "/dev/null",
    });
    await waitUntil(jobId, (s) => s.get(1)?.state === "RUNNING", "task 1 running", cluster.env);
    await cancel(`${jobId}_1`, { env: cluster.env });
    const states = await waitForArray(jobId, { ...WAIT, env: cluster.env });
    assertEquals(summary(states), { 0: "COMPLETED 0:0", 1: "CANCELLED 0:15", 2: "COMPLETED 0:0" });
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["done-0", "done-2"]);
    // Cancelling what has already ended is not an error.
    await cancel(jobId, { env: cluster.env });
    await cancel(`${jobId}_1`, { env: cluster.env });
  },
);

slurmCase(
  "pending tasks are reported one per index, not as a compressed range",
  async (cluster) => {
    const jobId = await submitArray({
      env: cluster.env,
      scriptText: "#!/bin/sh\nsleep 30\n",
      indices: "0-9:3",
      maxRunning: 1,
      jobName: "latentforge-test-pending",
      output: "/dev/null",
    });
    try {
      const states = await jobStates(jobId, { env: cluster.env });
      assertEquals([...states.keys()], [0, 3, 6, 9]);
      const pending = [...states.values()].filter((t) => t.state === "PENDING").length;
      assert(
        pending >= 3,
        `expected at least 3 pending tasks, found ${JSON.stringify(summary(states))}`,
      );
    } finally {
      await cancel(jobId, { env: cluster.env });
    }
    const final = await waitForArray(jobId, { ...WAIT, env: cluster.env });
    // Without accounting, tasks cancelled before they started leave no record at all.
    for (const [index, task] of final) {
      assertEquals(task.state, "CANCELLED", `task ${index}`);
    }
  },
);

slurmCase("a job Slurm rejects throws SlurmError with Slurm's own message", async (cluster) => {
  const error = await assertRejects(() =>
    submitArray({
      env: cluster.env,
      scriptText: "#!/bin/sh\ntrue\n",
      arraySize: 2,
      jobName: "latentforge-test-rejected",
      partition: "no-such-partition",
    })
  );
  assert(error instanceof SlurmError, `expected a SlurmError, found ${error.name}`);
  assertStringIncludes(error.message, 'Slurm rejected job "latentforge-test-rejected"');
  assertStringIncludes(error.message, "Invalid partition name specified");

  const big = `#!/bin/sh\n${"# padding past the pipe buffer\n".repeat(10_000)}true\n`;
  await assertRejects(
    () =>
      submitArray({
        env: cluster.env,
        scriptText: big,
        arraySize: 1,
        jobName: "latentforge-test-bad-option",
        extraArgs: ["--no-such-option"],
      }),
    "unrecognized option '--no-such-option'",
  );
});

Deno.test("without sbatch on PATH, submitArray says how to get it", async () => {
  await using bin = await tempDir();
  const emptyBin = bin.path;
  const program = `
    import { submitArray } from ${
    JSON.stringify(new URL("../lib/executor/slurm_submit.ts", import.meta.url).href)
  };
    try {
      await submitArray({ scriptText: "#!/bin/sh\\n", arraySize: 1, jobName: "x" });
      console.log("submitted");
    } catch (error) {
      console.log(error.name + ": " + error.message);
    }`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", program],
    env: { PATH: emptyBin },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  assertEquals(output.code, 0, text.decode(output.stderr));
  assertEquals(
    text.decode(output.stdout).trim(),
    "SlurmError: sbatch not found on PATH: install Slurm's client commands or run on a login node",
  );
});

slurmCase(
  "probeSharedPath passes for a directory the node sees, and leaves no marker behind",
  async (cluster) => {
    await using tmp = await tempDir();
    const dir = tmp.path;
    await probeSharedPath(dir, { ...WAIT, env: cluster.env });
    assertEquals([...Deno.readDirSync(dir)], []);
  },
);

slurmCase(
  "probeSharedPath names a directory the compute node cannot write into",
  async (cluster) => {
    await using parent = await tempDir();
    const missing = `${parent.path}/not-on-the-nodes`;
    await assertRejects(
      () =>
        probeSharedPath(missing, {
          env: cluster.env,
          timeoutMs: WAIT.timeoutMs,
          pollMs: WAIT.pollMs,
          markerWaitMs: 500,
        }),
      `cache directory ${missing} is not visible from the compute nodes`,
    );
  },
);

slurmCase(
  "a probe job that cannot start in time is cancelled and named in the error",
  async (cluster) => {
    await using tmp = await tempDir();
    const dir = tmp.path;
    const error = await assertRejects(
      () =>
        probeSharedPath(dir, {
          env: cluster.env,
          extraArgs: ["--begin=now+1hour"],
          timeoutMs: 1_000,
          pollMs: WAIT.pollMs,
        }),
      "did not finish within 1000 ms; still unfinished:",
    );
    const jobId = Number(/the probe job (\d+) for cache directory/.exec(error.message)?.[1]);
    assert(jobId > 0, `expected the probe's job id in: ${error.message}`);
    const left = [...(await jobStates(jobId, { env: cluster.env })).values()].filter((t) =>
      t.state !== "CANCELLED"
    );
    assertEquals(left, [], "the probe job is still queued");
  },
);

Deno.test("expandArrayIndices reads --array syntax and names a bad part", () => {
  assertEquals(expandArrayIndices("0-3,7"), [0, 1, 2, 3, 7]);
  assertEquals(expandArrayIndices("1-9:4%2"), [1, 5, 9]);
  assertEquals(expandArrayIndices("5,1,5"), [1, 5]);
  assertThrows(() => expandArrayIndices("0-x"), 'found "0-x"');
  assertThrows(() => expandArrayIndices("4-2"), 'empty range "4-2"');
});

Deno.test("submitArray and cancel refuse malformed arguments before calling Slurm", async () => {
  const base = { scriptText: "#!/bin/sh\n", jobName: "bad" };
  await assertRejects(() => submitArray(base), "give exactly one of arraySize and indices");
  await assertRejects(() => submitArray({ ...base, arraySize: 0 }), "found 0");
  await assertRejects(
    () => submitArray({ jobName: "bad", arraySize: 1 }),
    "give exactly one of scriptPath and scriptText, found neither",
  );
  await assertRejects(() => cancel("12;rm -rf /"), 'found "12;rm -rf /"');
});

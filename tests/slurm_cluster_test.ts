import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import {
  slurmRequirement,
  slurmSuite,
  slurmUnavailableWith,
  startSlurmCluster,
} from "./fixtures/slurm.ts";
import { testIf } from "./fixtures/skip.ts";

const slurm = await slurmRequirement();
const slurmCase = slurmSuite("the test cluster", slurm);
const text = new TextDecoder();

async function run(command: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(command, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

slurmCase("one idle node with this machine's CPUs, in the cluster's own partition", async (c) => {
  const sinfo = await run("sinfo", ["-h", "-o", "%P %c %T %N"], c.env);
  assertEquals(sinfo.code, 0, sinfo.stderr);
  assertEquals(
    sinfo.stdout.trim(),
    `${c.partition}* ${navigator.hardwareConcurrency} idle ${c.node}`,
  );
  // A Slurm command not handed the cluster's environment reaches no cluster at all.
  const bare = await run("sinfo", ["-h"]);
  assert(bare.code !== 0, `sinfo without the cluster's SLURM_CONF answered: ${bare.stdout}`);
  assertStringIncludes(bare.stderr, "/nonexistent/");
  const config = await run("scontrol", ["show", "config"], c.env);
  assertMatch(config.stdout, new RegExp(`ClusterName\\s+= ${c.partition}\\n`));
  assertMatch(config.stdout, new RegExp(`SLURM_CONF\\s+= ${c.conf}\\n`));
});

slurmCase("sbatch runs a job on this cluster, which lists it", async (c) => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-slurm-cluster-" });
  try {
    const sbatch = await run("sbatch", [
      "--parsable",
      "-o",
      `${dir}/out.txt`,
      "--wrap",
      "echo batch $SLURM_JOB_ID on $SLURM_JOB_PARTITION",
    ], c.env);
    assertEquals(sbatch.code, 0, sbatch.stderr);
    const jobId = /^(\d+)/.exec(sbatch.stdout.trim())?.[1];
    assert(jobId, `expected a job id, found ${JSON.stringify(sbatch.stdout)}`);
    const expected = `batch ${jobId} on ${c.partition}\n`;
    let found: string | undefined;
    // Polled rather than `sbatch --wait`, whose own polling backs off to 10 s.
    for (let i = 0; i < 240 && found !== expected; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      found = await Deno.readTextFile(`${dir}/out.txt`).catch(() => undefined);
    }
    assertEquals(found, expected);
    const job = await run("scontrol", ["show", "job", jobId], c.env);
    assertStringIncludes(job.stdout, `Partition=${c.partition} `);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

slurmCase("the cluster's own munged issues credentials that verify", async (c) => {
  const socket = `--socket=${join(c.dir, "munge", "munge.socket")}`;
  const credential = await run("munge", ["-n", socket]);
  assertEquals(credential.code, 0, credential.stderr);
  const child = new Deno.Command("unmunge", {
    args: [socket],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(credential.stdout));
  await writer.close();
  const verified = await child.output();
  assertEquals(verified.code, 0, text.decode(verified.stderr));
  assertMatch(text.decode(verified.stdout), /STATUS:\s+Success \(0\)/);
  const key = await Deno.stat(join(c.dir, "munge-key", "munge.key"));
  assertEquals((key.mode ?? 0) & 0o777, 0o400, "munge.key mode");
});

testIf(slurm, {
  name: "stopping the test cluster cancels its jobs, ends its daemons and removes its directory",
  async fn() {
    const cluster = await startSlurmCluster();
    const sbatch = await run(
      "sbatch",
      ["--parsable", "-o", "/dev/null", "--wrap", "sleep 600"],
      cluster.env,
    );
    assertEquals(sbatch.code, 0, sbatch.stderr);
    const pids = await Promise.all(
      ["slurmctld", "slurmd"].map(async (d) =>
        Number((await Deno.readTextFile(join(cluster.dir, `${d}.pid`))).trim())
      ),
    );
    await cluster.stop();
    assertEquals(await Deno.stat(cluster.dir).then(() => true, () => false), false);
    for (const pid of pids) {
      const ps = await run("ps", ["-p", String(pid), "-o", "comm="]);
      assertEquals(ps.stdout.trim(), "", `daemon ${pid} still runs`);
    }
    const sleeping = await run("pgrep", ["-f", "^sleep 600$"]);
    assertEquals(sleeping.stdout.trim(), "", "the job's process still runs");
  },
});

Deno.test("without Slurm, the tests skip and say how to enable them; nothing is installed", async () => {
  const empty = await Deno.makeTempDir({ prefix: "latentforge-no-slurm-" });
  try {
    const why = await slurmUnavailableWith({ path: empty, ci: false });
    assert(why !== null);
    assertStringIncludes(why, "slurmctld");
    assertStringIncludes(why, "apt-get install slurm-wlm munge");
    assertStringIncludes(why, "CI=true");
  } finally {
    await Deno.remove(empty);
  }
});

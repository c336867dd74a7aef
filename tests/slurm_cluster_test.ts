import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { ensureSlurm, SLURM_CONF, SLURM_PARTITION, SLURM_WORK_DIR } from "./fixtures/slurm.ts";

const slurm = await ensureSlurm();
if (!slurm.ok) console.warn(`skipping the Slurm cluster tests: ${slurm.reason}`);
const ignore = !slurm.ok;

const text = new TextDecoder();

async function run(
  command: string,
  args: string[],
  options: { withoutSlurmConf?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Deno.env.toObject();
  if (options.withoutSlurmConf) delete env.SLURM_CONF;
  const output = await new Deno.Command(command, {
    args,
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  };
}

async function daemonPids(): Promise<string[]> {
  return await Promise.all(
    ["slurmctld", "slurmd"].map(async (name) =>
      (await Deno.readTextFile(`${SLURM_WORK_DIR}/run/${name}.pid`)).trim()
    ),
  );
}

Deno.test({
  name: "the test cluster has one ready node with this machine's CPUs in the default partition",
  ignore,
  fn: async () => {
    const sinfo = await run("sinfo", ["-h", "-o", "%P %c %T %N"]);
    assertEquals(sinfo.code, 0, sinfo.stderr);
    const host = (await run("hostname", ["-s"])).stdout.trim();
    assertMatch(
      sinfo.stdout.trim(),
      new RegExp(
        `^${SLURM_PARTITION}\\* ${navigator.hardwareConcurrency} (idle|mixed|allocated) ${host}$`,
      ),
    );
    // No cgroup.conf: the Debian 22.05 daemons refuse CgroupPlugin=disabled.
    const confDir = SLURM_CONF.slice(0, SLURM_CONF.lastIndexOf("/"));
    assert(
      ![...Deno.readDirSync(confDir)].some((e) => e.name === "cgroup.conf"),
      `${confDir}/cgroup.conf must not exist`,
    );
  },
});

Deno.test({
  name: "plain srun and sbatch work without SLURM_CONF, as a user's shell would run them",
  ignore,
  fn: async () => {
    const env = { withoutSlurmConf: true };
    const srun = await run("srun", ["-N1", "-n1", "sh", "-c", "echo ran on $(hostname -s)"], env);
    assertEquals(srun.code, 0, srun.stderr);
    const host = (await run("hostname", ["-s"])).stdout.trim();
    assertEquals(srun.stdout.trim(), `ran on ${host}`);

    const dir = await Deno.makeTempDir({ prefix: "latentforge-slurm-cluster-" });
    const sbatch = await run(
      "sbatch",
      ["-o", `${dir}/out.txt`, "--wrap", "echo batch $SLURM_JOB_ID"],
      env,
    );
    assertEquals(sbatch.code, 0, sbatch.stderr);
    const jobId = /^Submitted batch job (\d+)$/.exec(sbatch.stdout.trim())?.[1];
    assert(jobId, `expected "Submitted batch job N", found ${JSON.stringify(sbatch.stdout)}`);
    // Polled here rather than with `sbatch --wait`, whose own polling backs off to 10 s.
    const expected = `batch ${jobId}\n`;
    let found: string | undefined;
    for (let i = 0; i < 120 && found !== expected; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      found = await Deno.readTextFile(`${dir}/out.txt`).catch(() => undefined);
    }
    assertEquals(found, expected);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "setting up again reuses the running cluster (fixture in a new process, and the CI script)",
  ignore,
  fn: async () => {
    const before = await daemonPids();
    const fixture = new URL("./fixtures/slurm.ts", import.meta.url).href;
    const again = await run(Deno.execPath(), [
      "eval",
      `import { ensureSlurm } from ${JSON.stringify(fixture)};
       console.log(JSON.stringify(await ensureSlurm()));`,
    ]);
    assertEquals(again.stdout.trim(), '{"ok":true}', again.stderr);

    const script = new URL("../.ci/slurm_setup.sh", import.meta.url).pathname;
    const ci = await run("bash", [script]);
    assertEquals(ci.code, 0, ci.stderr);
    assertStringIncludes(ci.stdout, "Slurm test cluster already up");
    assertEquals(await daemonPids(), before, "the daemons were restarted");
  },
});

Deno.test({
  name: "munge credentials made here verify (the daemons authenticate with them)",
  ignore,
  fn: async () => {
    const credential = await run("munge", ["-n"]);
    assertEquals(credential.code, 0, credential.stderr);
    const child = new Deno.Command("unmunge", { stdin: "piped", stdout: "piped", stderr: "piped" })
      .spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(credential.stdout));
    await writer.close();
    const verified = await child.output();
    assertEquals(verified.code, 0, text.decode(verified.stderr));
    assertMatch(text.decode(verified.stdout), /STATUS:\s+Success \(0\)/);
    const key = await Deno.stat("/etc/munge/munge.key");
    assertEquals((key.mode ?? 0) & 0o777, 0o400, "munge.key mode");
  },
});

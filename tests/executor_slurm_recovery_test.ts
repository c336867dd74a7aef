import { join } from "node:path";
import { assertEquals, assertMatch } from "./fixtures/assert.ts";
import { slurmRequirement, slurmSuite } from "./fixtures/slurm.ts";
import { parse } from "./fixtures/project.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";

const slurmCase = slurmSuite("Slurm executor recovery", await slurmRequirement());

const executor = { kind: "slurm", tasks: ["scale"], array_tasks: 2, poll_s: 0.5, retries: 2 };
const decoder = new TextDecoder();

/** Jobs Slurm still lists that run in `dir` (other runs may share the cluster), as "id state". */
async function jobsIn(
  dir: string,
  name: string,
  env: Record<string, string>,
): Promise<string[]> {
  const args = ["-h", "-n", name, "-o", "%i|%T|%Z"];
  const out = await new Deno.Command("squeue", { args, env }).output();
  return decoder.decode(out.stdout).split("\n").map((l) => l.split("|"))
    .filter(([, , workDir]) => workDir === dir).map(([id, state]) => `${id} ${state}`);
}

slurmCase(
  "SIGINT while the shared-path probe job waits cancels the probe and submits nothing",
  async (cluster) => {
    const p = await ToyProject.create({ count: 4 });
    try {
      // extra_args go to the probe too: --begin keeps it pending, as on a busy cluster.
      const slurm = { extra_args: ["--begin=now+120"] };
      await p.writeConfig({ count: 4 }, { executor: { ...executor, slurm } });
      const child = p.command(["run", "--json"], cluster.env).spawn();
      const output = child.output();
      // Jobs are told apart from other runs' by their working directory, the project's.
      let probe: string[] = [];
      const deadline = Date.now() + 30_000;
      while (probe.length === 0 && Date.now() < deadline) {
        probe = await jobsIn(p.dir, "latentforge-probe", cluster.env);
      }
      child.kill("SIGINT");
      const out = await output;
      const r = parse(out.code, out.stdout, out.stderr);
      assertEquals(probe.length, 1, "the probe job was seen");
      assertEquals(r.code, 130, r.stderr);
      const logs = r.events.filter((e) => e.event === "log").map((e) => e.message).join("\n");
      assertEquals(/as Slurm job/.test(logs), false, `nothing was submitted:\n${logs}`);
      assertEquals(
        await jobsIn(p.dir, "latentforge-probe", cluster.env),
        [],
        "the probe was cancelled",
      );
      assertEquals(await jobsIn(p.dir, "latentforge-scale", cluster.env), []);
    } finally {
      await p.cleanup();
    }
  },
);

slurmCase(
  "squeue failing for a while (a busy controller) does not fail the wave",
  async (cluster) => {
    const p = await ToyProject.create({ count: 6 });
    const bin = await Deno.makeTempDir();
    try {
      // squeue fails its first three calls as a controller that does not answer in time would,
      // then hands over to the real one.
      const real = await new Deno.Command("sh", { args: ["-c", "command -v squeue"] }).output();
      const counter = join(bin, "calls");
      await Deno.writeTextFile(
        join(bin, "squeue"),
        `#!/bin/sh
n=$(cat ${counter} 2>/dev/null || echo 0); echo $((n + 1)) > ${counter}
if [ "$n" -lt 3 ]; then
echo "squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation" >&2
exit 1
fi
exec ${decoder.decode(real.stdout).trim()} "$@"
`,
        { mode: 0o755 },
      );
      await p.writeConfig({ count: 6 }, {
        executor: { ...executor, slurm: { probe_shared: false } },
      });
      const r = await p.run(["run", "--json"], {
        ...cluster.env,
        PATH: `${bin}:${Deno.env.get("PATH")}`,
      });
      assertEquals(r.code, 0, r.stderr + r.stdout);
      const logs = r.events.filter((e) => e.event === "log").map((e) => e.message).join("\n");
      assertMatch(logs, /cannot read the state of Slurm job \d+, trying again: .*Socket timed out/);
      assertMatch(logs, /Slurm answers again about job \d+/);
      assertEquals(/resubmission/.test(logs), false, "no array task was taken for lost");
      assertEquals(await Deno.readTextFile(p.out), await ToyProject.cleanOutput(6));
    } finally {
      await p.cleanup();
      await Deno.remove(bin, { recursive: true });
    }
  },
);

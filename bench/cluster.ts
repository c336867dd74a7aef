/**
 * The Slurm cluster a benchmark runs on: the one `sinfo` answers for (as `SLURM_CONF` or the
 * system's configuration says), or where none answers, a single-node cluster of its own as the
 * tests start (root, with slurm-wlm and munge installed), which the benchmark stops at its end.
 *
 * @module
 */
import { outputUnlessAbsent } from "./absent.ts";
import { type SlurmCluster, slurmUnavailable, startSlurmCluster } from "../tests/fixtures/slurm.ts";

/** A cluster to run on: its size, and how to stop it when the benchmark started it. */
export interface BenchCluster {
  nodes: number;
  cpus: number;
  state: string;
  /** Stops the cluster the benchmark started (nothing for one that was running). */
  stop(): Promise<void>;
}

const askSinfo = () =>
  outputUnlessAbsent(
    new Deno.Command("sinfo", {
      args: ["-h", "-o", "%D %c %T"],
      signal: AbortSignal.timeout(15_000),
      stdout: "piped",
      stderr: "null",
    }),
  );

/** The cluster `sinfo` answers for, or one started here; exits when neither can be had. */
export async function benchCluster(): Promise<BenchCluster> {
  let sinfo = await askSinfo();
  let own: SlurmCluster | undefined;
  if (!sinfo || sinfo.code !== 0) {
    const why = await slurmUnavailable();
    if (why) {
      console.error(`no Slurm cluster answers sinfo here, and none can be started: ${why}`);
      Deno.exit(1);
    }
    own = await startSlurmCluster();
    // This program is the cluster's only user: every command it starts reads its config.
    Deno.env.set("SLURM_CONF", own.conf);
    // Interrupted, the benchmark still stops the cluster it started (its runs end with it).
    const cluster = own;
    Deno.addSignalListener("SIGINT", () => {
      console.error("interrupted: stopping the cluster");
      cluster.stop().finally(() => Deno.exit(130));
    });
    sinfo = await askSinfo();
  }
  if (!sinfo || sinfo.code !== 0) throw new Error("the started cluster does not answer sinfo");
  const [nodes, cpus, state] = new TextDecoder().decode(sinfo.stdout).trim().split(/\s+/);
  console.log(`cluster: ${nodes} node(s), ${cpus} CPUs each, ${state}`);
  return {
    nodes: Number(nodes),
    cpus: Number(cpus),
    state,
    stop: async () => await own?.stop(),
  };
}

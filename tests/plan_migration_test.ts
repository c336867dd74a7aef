/**
 * A cache written by release 0.1.0 opens and reuses its results: 0.1.0 itself (checked out of
 * this repository's history) runs the pipeline into a cache, then this code plans and runs on
 * it. Every record whose task is unchanged is adopted once under its new key, the plan says so
 * in one line, and only preprocess (it records a recipe now), optimize (its version rose with
 * its second method) and package — whose files now state less, so its version was bumped — run
 * again; the run after that has nothing to do.
 */
import { join } from "node:path";
import { assertEquals, assertMatch } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { mirroredConfig, parse, pipelineCommand, REPO, tasksRan } from "./fixtures/project.ts";
import { requirement, testIf } from "./fixtures/skip.ts";
import { writeTinyVae } from "./fixtures/vae.ts";

const RELEASE = "98881b7";

/** Whether this checkout's history holds the release (a shallow clone may not). */
const history = await new Deno.Command("git", {
  args: ["cat-file", "-e", `${RELEASE}^{commit}`],
  cwd: REPO,
  stdout: "null",
  stderr: "null",
}).output().then((o) => o.success, (e) => {
  if (e instanceof Deno.errors.NotFound) return false;
  throw e;
});
const HISTORY = requirement(
  "missing-dependency",
  history,
  `the repository's history lacks release 0.1.0 (commit ${RELEASE}): fetch it (git fetch --unshallow)`,
);

/** Checks release 0.1.0 out into `dir`, running with this checkout's node_modules. */
async function checkoutRelease(dir: string): Promise<void> {
  const archive = await new Deno.Command("git", {
    args: ["archive", "--format=tar", RELEASE],
    cwd: REPO,
    stdout: "piped",
  }).output();
  const tar = new Deno.Command("tar", { args: ["-x", "-C", dir], stdin: "piped" }).spawn();
  const writer = tar.stdin.getWriter();
  await writer.write(archive.stdout);
  await writer.close();
  assertEquals((await tar.status).code, 0);
  const config = JSON.parse(await Deno.readTextFile(join(dir, "deno.json")));
  // Use the installed packages as they are; never install or write a lock file.
  await Deno.writeTextFile(
    join(dir, "deno.json"),
    JSON.stringify({ ...config, nodeModulesDir: "manual", lock: false }),
  );
  await Deno.symlink(join(REPO, "node_modules"), join(dir, "node_modules"));
}

testIf(HISTORY, {
  name:
    "a cache written by 0.1.0 is adopted once: only preprocess, optimize and package (their versions bumped) rerun",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const mirror = await startMirror({ count: 4, imageSize: 32, seed: 12 });
    const dir = await Deno.makeTempDir({ prefix: "latentforge-migration-" });
    try {
      const release = join(dir, "release");
      await Deno.mkdir(release);
      await checkoutRelease(release);
      const vae = await writeTinyVae(join(dir, "vae"));
      const configPath = join(dir, "config.json");
      await Deno.writeTextFile(
        configPath,
        JSON.stringify(mirroredConfig({
          preprocess: { size: 32 },
          model: { scaling_factor: 1, providers: ["cpu"], threads: 1 },
          optimize: { max_steps: 2, batch_size: 2, checkpoint_every: 1 },
          package: { formats: ["npz"], samples: 1, out_dir: join(dir, "out") },
        }, { mirror, vae, labels: true, pin: ["spec", "labels"] })),
      );
      const cache = join(dir, "cache");
      const run = async (main: string, denoConfig: string, args: string[]) => {
        const out = await pipelineCommand(args, {
          main,
          denoConfig,
          cache,
          configPath,
          cwd: dir,
        }).output();
        return parse(out.code, out.stdout, out.stderr);
      };
      const old = await run(join(release, "pipeline.ts"), join(release, "deno.json"), [
        "run",
        "--json",
      ]);
      assertEquals(old.code, 0, old.stderr);

      const here = (args: string[]) =>
        run(join(REPO, "pipeline.ts"), join(REPO, "deno.json"), args);
      const logs = (r: { events: Record<string, unknown>[] }) =>
        r.events.filter((e) => e.event === "log" && e.task === "run").map((e) => e.message);
      const line =
        /^\d+ records adopted without library identity \(fetch-json 1, fetch-images 4, verify-sizes 4, label-split 1, encode 4\); --force TASK recomputes them$/;
      const dry = await here(["run", "--dry-run", "--json"]);
      assertEquals(dry.code, 0, dry.stderr);
      assertEquals(logs(dry).length, 1, JSON.stringify(logs(dry)));
      assertMatch(String(logs(dry)[0]), line);
      const planned = [
        ...new Set(dry.events.filter((e) => e.event === "plan").map((e) => e.task)),
      ];
      // preprocess now records a recipe instead of a tensor, and optimize's version rose with its
      // second method: they and package run again. encode is planned only if preprocess's
      // output changes, and it does not: its latents are adopted as they are.
      assertEquals(planned, ["preprocess", "encode", "optimize", "package"]);
      const encodePlans = dry.events.filter((e) => e.event === "plan" && e.task === "encode");
      for (const e of encodePlans) {
        assertMatch(JSON.stringify(e), /reruns if the output of preprocess changes/);
      }
      const now = await here(["run", "--json"]);
      assertEquals(now.code, 0, now.stderr);
      assertMatch(String(logs(now)[0]), line);
      assertEquals(
        Object.fromEntries([...tasksRan(now)].filter(([, n]) => n > 0)),
        { preprocess: 4, optimize: 4, package: 1 },
      );
      const again = await here(["run", "--json"]);
      assertEquals(logs(again), []);
      assertEquals([...tasksRan(again).values()].reduce((a, b) => a + b, 0), 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
      await mirror.close();
    }
  },
});

/**
 * The fixtures keep to their own temp directories: the demo's generated VAE goes under the
 * `--cache` it is given, toy projects are copied outside the repository, and neither adds or
 * changes a file of the repository tree. (`.ci/run` checks the same for the whole suite, with
 * `git status --porcelain --ignored` and a listing of /tmp before and after.)
 */
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { removeTree } from "./fixtures/project.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));
/** Not the project's files: installed packages and git's own state. */
const OUTSIDE_TREE = new Set(["node_modules", ".git"]);

/** Every file and folder of the repository tree with its size and modification time. */
async function treeState(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      const rel = relative(REPO, path);
      if (dir === REPO.replace(/\/$/, "") && OUTSIDE_TREE.has(e.name)) continue;
      const info = await Deno.lstat(path).catch(() => null);
      if (!info) continue; // removed while walking: only additions and changes matter
      out.set(rel, `${info.size} ${info.mtime?.getTime()}`);
      if (e.isDirectory) await walk(path);
    }
  };
  await walk(REPO.replace(/\/$/, ""));
  return out;
}

/** Paths added or changed between two states (directories count when their entries change). */
function changed(before: Map<string, string>, after: Map<string, string>): string[] {
  return [...after].filter(([path, state]) => before.get(path) !== state).map(([path]) => path);
}

Deno.test("deno task demo --cache DIR generates its VAE inside DIR and leaves the repository alone", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-demo-iso-" });
  try {
    const before = await treeState();
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "demo",
        "--limit",
        "2",
        "--set",
        "optimize.max_steps=6",
        "--set",
        `package.out_dir=${join(dir, "out")}`,
        "--cache",
        join(dir, "cache"),
      ],
      cwd: REPO,
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr + stdout);
    assertStringIncludes(stdout, `the report is at ${join(dir, "out", "report.html")}`);
    for (const f of ["vae_encoder.onnx", "vae_decoder.onnx"]) {
      assert((await Deno.stat(join(dir, "cache", "demo", "vae", f))).size > 0, `${f} generated`);
    }
    // The run used those models: its log names the encoder it loaded.
    assertStringIncludes(stderr, `(${join(dir, "cache", "demo", "vae", "vae_encoder.onnx")})`);
    assertEquals(changed(before, await treeState()), [], "the demo wrote into the repository");
  } finally {
    await removeTree(dir);
  }
});

Deno.test("a toy project lives in its own temp directory, runs there, and cleanup removes it", async () => {
  const before = await treeState();
  const p = await ToyProject.create({ count: 3 });
  try {
    assert(relative(REPO, p.dir).startsWith(".."), `${p.dir} is inside the repository`);
    const r = await p.run(["run"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(await Deno.readTextFile(p.out), "0 0\n1 1\n2 4\nfailed: \n");
  } finally {
    await p.cleanup();
  }
  await Deno.stat(p.dir).then(
    () => assert(false, `${p.dir} is still there`),
    (e) => assert(e instanceof Deno.errors.NotFound, String(e)),
  );
  // The copy linked the checkout's node_modules; removing the copy left them in place.
  assert((await Deno.stat(join(REPO, "node_modules", ".deno"))).isDirectory);
  assertEquals(changed(before, await treeState()), [], "the toy project wrote into the repository");
});

/**
 * The reliability corpus: one row per way a real machine or a real user can put the user's data
 * at risk — a folder of their own named as output, a partial run over a complete dataset, bytes
 * changed in the store, a damaged record database, a full or read-only disk, awkward file
 * names, two runs at once, a signal mid-publish. Each row gives the exit code its command must
 * end with, the words its message must contain, and a "nothing lost" check of what must still
 * be there afterwards (and, where the row breaks something, that the next run recovers and
 * ends byte-identical to a clean run).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { KEYS } from "../../lib/store/records.ts";
import { nanDecoder, solidPng } from "../bad_inputs/generate.ts";
import { assert, assertEquals, assertStringIncludes } from "../fixtures/assert.ts";
import { PYTHON, PYTHON_ENV } from "../fixtures/python.ts";
import { mountTmpfs } from "../fixtures/tmpfs.ts";
import { parse, type Ran } from "../fixtures/project.ts";
import { assertSameDataset, readTree, type Scene, type Stage } from "./scene.ts";

/** One row of the corpus. */
export interface ReliabilityCase {
  /** What is tried, in a user's words. */
  name: string;
  /** The row mounts a tmpfs (skipped, saying why, where the machine does not allow it). */
  mounts?: boolean;
  /** Expected exit code: 0 ok, 1 items failed, 2 bad invocation, 3 systemic fault, 130 signal. */
  code: number;
  /** Words its output must contain. */
  words: string[];
  /** Sets the scene up and runs the row's command. */
  act(scene: Scene, stage: Stage): Promise<Ran>;
  /** What must still hold afterwards; returns a short note of what was checked. */
  kept(scene: Scene, stage: Stage, ran: Ran): Promise<string>;
  /** Undoes what `act` set up outside the scene's folder (mounts), whatever happened. */
  cleanup?(scene: Scene): Promise<void>;
}

/** Tasks whose items (or action) ran in a `--json` run, with counts; cached ones left out. */
export function ranTasks(r: Ran): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of r.events) {
    const counts = e.counts as { ran: number } | undefined;
    if (e.event === "task-end" && counts && counts.ran > 0) out[e.task as string] = counts.ran;
  }
  return out;
}

async function flipByte(path: string): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[Math.floor(bytes.length / 2)] ^= 0x40;
  await Deno.writeFile(path, bytes);
}

/** Entries beside the output folder that a publish may have left (`out.tmp-…`, `out.old-…`). */
async function leftovers(scene: Scene): Promise<string[]> {
  const names = (await Array.fromAsync(Deno.readDir(scene.dir))).map((e) => e.name);
  return names.filter((n) => /^out\.(tmp|old)-/.test(n));
}

/** A rerun that recomputes nothing and leaves the clean dataset. */
async function rerunsNothing(scene: Scene, stage: Stage, what: string): Promise<void> {
  const again = await scene.run(["run", "--json"]);
  assertEquals(again.code, 0, `${what}: the next run: ${again.stderr}`);
  assertEquals(ranTasks(again), {}, `${what}: the next run recomputed`);
  assertSameDataset(await scene.published(), stage.dataset, what);
}

/** Repairs the record database and checks nothing needs recomputing afterwards. */
async function repairs(scene: Scene, stage: Stage): Promise<string> {
  const repair = await scene.run(["verify", "--repair"]);
  assertEquals(repair.code, 0, `verify --repair:\n${repair.stdout}${repair.stderr}`);
  assertStringIncludes(repair.stdout, "restored");
  assertStringIncludes(repair.stdout, "nothing will rerun");
  await rerunsNothing(scene, stage, "after verify --repair");
  return "verify --repair restored every record; the next run recomputed nothing";
}

/** Overwrites every page of the record database but the first with a pattern, here and there. */
async function garblePages(file: string): Promise<void> {
  const bytes = await Deno.readFile(file);
  const page = new DataView(bytes.buffer).getUint16(16);
  for (let at = page; at + 64 < bytes.length; at += page) {
    bytes.set(new TextEncoder().encode("latentforge test damage, page "), at + 8);
  }
  await Deno.writeFile(file, bytes);
}

async function kvKeys(scene: Scene, prefix: Deno.KvKey): Promise<number> {
  const kv = await Deno.openKv(join(scene.cache, "records.sqlite3"));
  try {
    let n = 0;
    for await (const _ of kv.list({ prefix })) n++;
    return n;
  } finally {
    kv.close();
  }
}

/**
 * Runs a command and sends it SIGTERM when a publish starts writing its copy beside `out` (an
 * `out.tmp-…` folder appears); resolves with what it printed.
 */
async function termWhenPublishing(scene: Scene, args: string[]): Promise<Ran> {
  const watcher = Deno.watchFs(scene.dir, { recursive: false });
  const child = scene.command(args).spawn();
  const output = child.output();
  const exited = output.then(() => "exited" as const);
  const publishing = (async () => {
    for await (const event of watcher) {
      const names = event.paths.map((p) => p.slice(scene.dir.length + 1));
      if (names.some((n) => n.startsWith("out.tmp-"))) return "publishing" as const;
    }
    return "exited" as const;
  })();
  const first = await Promise.race([publishing, exited]);
  watcher.close();
  if (first === "publishing") child.kill("SIGTERM");
  const out = await output;
  return parse(out.code, out.stdout, out.stderr);
}

/** Every published file is the one the marker names (digest), and only those are there. */
async function consistentFolder(dir: string): Promise<void> {
  const tree = await readTree(dir);
  const marker = JSON.parse(new TextDecoder().decode(tree.get(".latentforge.json")));
  const files = marker.files as Record<string, string>;
  assertEquals(
    [...tree.keys()].filter((k) => k !== ".latentforge.json").sort(),
    Object.keys(files).sort(),
  );
  for (const [rel, digest] of Object.entries(files)) {
    const hex = createHash("sha256").update(tree.get(rel)!).digest("hex");
    assertEquals(hex, digest, `${rel} is not the file the marker names`);
  }
}

/** The rows. */
export const CASES: ReliabilityCase[] = [
  {
    name: "out_dir names a folder of the user's own files",
    code: 2,
    words: ["photos", "did not create it", "notes.txt", "choose a new or empty folder"],
    async act(s) {
      await Deno.mkdir(join(s.dir, "photos", "2019"), { recursive: true });
      await Deno.writeTextFile(join(s.dir, "photos", "notes.txt"), "mine");
      await Deno.writeTextFile(join(s.dir, "photos", "2019", "beach.jpg"), "jpeg");
      await s.patchConfig({ package: { out_dir: "photos" } });
      return await s.run(["run", "--json"]);
    },
    async kept(s, _stage, r) {
      const files = await readTree(join(s.dir, "photos"));
      assertEquals([...files.keys()].sort(), ["2019/beach.jpg", "notes.txt"]);
      assertEquals(r.events.filter((e) => e.event === "run-start"), [], "work started");
      return "the folder's 2 files untouched; refused before the run started";
    },
  },
  {
    name: "out_dir names a file",
    code: 2,
    words: ["notes.txt", "is a file"],
    async act(s) {
      await Deno.writeTextFile(join(s.dir, "notes.txt"), "mine");
      await s.patchConfig({ package: { out_dir: "notes.txt" } });
      return await s.run(["run", "--json"]);
    },
    async kept(s) {
      assertEquals(await Deno.readTextFile(join(s.dir, "notes.txt")), "mine");
      return "the file untouched";
    },
  },
  {
    name: "--cache names a file",
    code: 2,
    words: ["--cache", "is a file"],
    async act(s) {
      await Deno.writeTextFile(join(s.dir, "notes.txt"), "mine");
      return await s.run(["run", "--json", "--cache", join(s.dir, "notes.txt")]);
    },
    async kept(s) {
      assertEquals(await Deno.readTextFile(join(s.dir, "notes.txt")), "mine");
      return "the file untouched";
    },
  },
  {
    name: "--limit over a complete dataset",
    code: 0,
    words: ["holds a complete dataset", "out.partial"],
    act: (s) => s.run(["run", "--json", "--limit", "2"]),
    async kept(s, stage) {
      assertSameDataset(await s.published(), stage.dataset, "the complete dataset");
      const partial = await readTree(`${s.out}.partial`);
      const manifest = JSON.parse(new TextDecoder().decode(partial.get("manifest.json")));
      assertEquals(manifest.limit, 2);
      assertEquals(Object.keys(manifest.images).length, 2);
      return "out/ as the clean run left it; out.partial/manifest.json says limit 2, 2 images";
    },
  },
  {
    name: "a run in which every optimize item fails, over a complete dataset",
    code: 1,
    words: ["all 6 items failed", 'upstream task "optimize" failed'],
    async act(s, stage) {
      const nan = join(s.dir, "nan_decoder.onnx");
      await nanDecoder(stage.vae.decoder, nan);
      await s.patchConfig({ model: { ...await model(s), decoder: { path: nan } } });
      return await s.run(["run", "--json"]);
    },
    async kept(s, stage) {
      assertSameDataset(await s.published(), stage.dataset, "the complete dataset");
      assertEquals((await readTree(`${s.out}.partial`)).size, 0, "an empty dataset was published");
      return "out/ as the clean run left it; no empty dataset published anywhere";
    },
  },
  {
    name: "a byte flipped in a stored latent that a rebuilt package reads",
    code: 0,
    words: ["is corrupt", "running again the actions built from them", "optimize 1"],
    async act(s, stage) {
      await flipByte(s.objectPath(await s.objectOf("optimize", stage.items[1], "latent")));
      return await s.run(["run", "--json", "--force", "package"]);
    },
    async kept(s, stage) {
      assertSameDataset(await s.published(), stage.dataset, "the dataset");
      const quarantined = await Array.fromAsync(Deno.readDir(join(s.cache, "quarantine")));
      assertEquals(quarantined.length, 1);
      return "the object quarantined, its latent recomputed; the dataset byte-identical to clean";
    },
  },
  {
    name: "a stored latent deleted, then a package rebuilt",
    code: 0,
    words: ["is missing", "running again the actions built from them", "optimize 1"],
    async act(s, stage) {
      // A latent the rebuilt package reads (its report decodes it): split files it reuses from
      // the store need none.
      await Deno.remove(s.objectPath(await s.objectOf("optimize", stage.items[1], "latent")));
      return await s.run(["run", "--json", "--force", "package"]);
    },
    async kept(s, stage) {
      assertSameDataset(await s.published(), stage.dataset, "the dataset");
      return "the latent recomputed; the dataset byte-identical to clean";
    },
  },
  {
    name: "verify after a byte flipped in a stored latent: downstream records too",
    code: 1,
    words: ["corrupt:", "records invalidated", "optimize 1", "package 1", "rebuilds exactly"],
    async act(s, stage) {
      await flipByte(s.objectPath(await s.objectOf("optimize", stage.items[2], "latent")));
      return await s.run(["verify"]);
    },
    async kept(s, stage) {
      const again = await s.run(["run", "--json"]);
      assertEquals(again.code, 0, again.stderr);
      assertEquals(ranTasks(again), { optimize: 1, package: 1 });
      assertSameDataset(await s.published(), stage.dataset, "the rebuilt dataset");
      const second = await s.run(["verify"]);
      assertEquals(second.code, 0, second.stdout);
      return "the next run reran optimize 1 and package 1; byte-identical; verify clean after";
    },
  },
  {
    name: "verify after a stored encoder latent was deleted",
    code: 1,
    words: ["missing:", "encode", "records invalidated"],
    async act(s, stage) {
      await Deno.remove(s.objectPath(await s.objectOf("encode", stage.items[0], "latent")));
      return await s.run(["verify"]);
    },
    async kept(s, stage) {
      const again = await s.run(["run", "--json"]);
      assertEquals(again.code, 0, again.stderr);
      assertEquals(ranTasks(again), { encode: 1, optimize: 1, package: 1 });
      assertSameDataset(await s.published(), stage.dataset, "the rebuilt dataset");
      return "the next run reran encode 1, optimize 1, package 1; byte-identical";
    },
  },
  {
    name: "a published file overwritten by hand",
    code: 0,
    words: ["rewrote", "metrics.csv"],
    async act(s) {
      const csv = [...(await s.published()).keys()].find((k) => k.endsWith("metrics.csv"))!;
      await Deno.writeTextFile(join(s.out, csv), "edited\n");
      return await s.run(["run", "--json"]);
    },
    async kept(s, stage) {
      assertSameDataset(await s.published(), stage.dataset, "the dataset");
      return "the file rewritten from the store; the dataset byte-identical";
    },
  },
  {
    name: "a published file changed in place, its size and mtime kept (verify)",
    code: 1,
    words: ["rewrote", "latents.npz", "differed from what was published"],
    async act(s) {
      const npz = [...(await s.published()).keys()].find((k) => k.endsWith("latents.npz"))!;
      const path = join(s.out, npz);
      const info = await Deno.stat(path);
      await flipByte(path);
      await Deno.utime(path, info.atime!, info.mtime!);
      return await s.run(["verify"]);
    },
    async kept(s, stage) {
      assertSameDataset(await s.published(), stage.dataset, "the dataset");
      return "the file rewritten; the dataset byte-identical";
    },
  },
  {
    name: "the record database truncated",
    code: 3,
    words: ["records.sqlite3", "truncated", "verify --repair"],
    async act(s) {
      const file = join(s.cache, "records.sqlite3");
      await Deno.truncate(file, Math.floor((await Deno.stat(file)).size / 2));
      return await s.run(["run", "--json"]);
    },
    kept: (s, stage) => repairs(s, stage),
  },
  {
    name: "the record database's pages overwritten",
    code: 3,
    words: ["records.sqlite3", "damaged", "verify --repair"],
    async act(s) {
      await garblePages(join(s.cache, "records.sqlite3"));
      return await s.run(["verify"]);
    },
    kept: (s, stage) => repairs(s, stage),
  },
  {
    name: "the record database's header overwritten",
    code: 3,
    words: ["records.sqlite3", "not an SQLite database", "verify --repair"],
    async act(s) {
      const file = await Deno.open(join(s.cache, "records.sqlite3"), { write: true });
      await file.write(new TextEncoder().encode("not a database at all"));
      file.close();
      return await s.run(["run", "--json"]);
    },
    kept: (s, stage) => repairs(s, stage),
  },
  {
    name: "the record database emptied (0 bytes)",
    code: 3,
    words: ["records.sqlite3", "empty (0 bytes)", "verify --repair"],
    async act(s) {
      await Deno.truncate(join(s.cache, "records.sqlite3"), 0);
      return await s.run(["run", "--json"]);
    },
    kept: (s, stage) => repairs(s, stage),
  },
  {
    name: "the record database deleted",
    code: 3,
    words: ["records.sqlite3", "missing, while journal/ holds", "verify --repair"],
    async act(s) {
      await Deno.remove(join(s.cache, "records.sqlite3"));
      return await s.run(["run", "--json"]);
    },
    kept: (s, stage) => repairs(s, stage),
  },
  {
    name: "the cache's disk fills up (a small tmpfs)",
    mounts: true,
    code: 3,
    words: ["the disk is full", "free of", "deno task gc"],
    async act(s, stage) {
      // An empty cache on a disk that holds about 60% of what the run needs.
      await Deno.remove(s.cache, { recursive: true });
      await Deno.remove(s.out, { recursive: true });
      const needKb = Math.ceil((await du(stage.clean.cache)) / 1024);
      const fs = await mountTmpfs({ sizeKb: Math.floor(needKb * 0.6) });
      if (typeof fs === "string") throw new Error(fs);
      mounts.set(s.dir, fs);
      await Deno.symlink(fs.path, s.cache);
      return await s.run(["run", "--json"]);
    },
    async kept(s, stage, r) {
      const fs = mounts.get(s.dir)!;
      try {
        const failures = r.events.filter((e) => e.event === "item" && e.status === "failed");
        assertEquals(failures, [], "a disk-full fault was recorded as an item failure");
        const retries = r.events.filter((e) => e.event === "retry");
        assertEquals(retries, [], "a full disk was retried like a dropped connection");
        // The lease is free at once: the run's lock went with it, nothing written to free it.
        const lock = await Deno.open(join(s.cache, "lease.lock"), { read: true, write: true });
        try {
          assert(await lock.tryLock(true), "the lease is still held after the run ended");
        } finally {
          lock.close();
        }
        await fs.remount({ sizeKb: 64 * 1024 });
        const again = await s.run(["run", "--json"]);
        assertEquals(again.code, 0, again.stderr);
        assertSameDataset(await s.published(), stage.dataset, "after freeing space");
        return "no item failure or retry recorded; lease free at once; after freeing space the " +
          "rerun finished byte-identical to a clean run";
      } finally {
        await Deno.remove(s.cache);
      }
    },
    cleanup: unmount,
  },
  {
    name: "the folder above out_dir is read-only",
    mounts: true,
    code: 3,
    words: ["read-only", "remount it read-write"],
    async act(s) {
      const fs = await mountTmpfs({ sizeKb: 1024, readOnly: true });
      if (typeof fs === "string") throw new Error(fs);
      mounts.set(s.dir, fs);
      await Deno.symlink(fs.path, join(s.dir, "ro"));
      await s.patchConfig({ package: { out_dir: "ro/out" } });
      return await s.run(["run", "--json"]);
    },
    async kept(s, stage) {
      const fs = mounts.get(s.dir)!;
      try {
        await fs.remount({ readOnly: false });
        const again = await s.run(["run", "--json"]);
        assertEquals(again.code, 0, again.stderr);
        // Where a dataset goes is in no key: the cached dataset is published there as it is.
        assertEquals(ranTasks(again), {});
        assertSameDataset(await readTree(join(fs.path, "out")), stage.dataset, "the dataset");
        return "made writable, the rerun recomputed nothing; the dataset byte-identical to clean";
      } finally {
        await Deno.remove(join(s.dir, "ro"));
      }
    },
    cleanup: unmount,
  },
  {
    name: "image file names with a comma, a quote and a line break",
    code: 0,
    words: [],
    async act(s, stage) {
      const images = join(s.dir, "images");
      await Deno.mkdir(images);
      const names = ["plain.png", "a,b.png", 'say "hi".png', "line\nbreak.png"];
      for (const [i, name] of names.entries()) {
        await Deno.writeFile(join(images, name), await solidPng(16, 40 + 50 * i));
      }
      await folderConfig(s, stage, images, "names");
      return await s.run(["run", "--json"]);
    },
    async kept(s) {
      const out = join(s.dir, "names");
      const csvs = [...(await readTree(out)).keys()].filter((k) => k.endsWith("metrics.csv"));
      const read = await new Deno.Command(PYTHON, {
        args: [
          "-c",
          `import csv, json, sys, glob, os
out = sys.argv[1]
rows, lines = [], []
for path in sorted(glob.glob(os.path.join(out, "*", "metrics.csv"))):
    with open(path, newline="") as f:
        r = list(csv.reader(f))
    assert all(len(row) == len(r[0]) for row in r), r
    rows += [row[0] for row in r[1:]]
for path in sorted(glob.glob(os.path.join(out, "*", "manifest.txt"))):
    with open(path, newline="") as f:
        lines += f.read().split("\\n")[:-1]
print(json.dumps({"ids": sorted(rows), "lines": sorted(lines)}))`,
          out,
        ],
        env: PYTHON_ENV,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assertEquals(read.code, 0, new TextDecoder().decode(read.stderr));
      const { ids, lines } = JSON.parse(new TextDecoder().decode(read.stdout));
      assertEquals(ids.length, 4, `metrics.csv rows read by Python: ${JSON.stringify(ids)}`);
      assert(
        ids.some((id: string) => id.includes("\n")) || ids.some((id: string) => id.includes(",")),
      );
      assertEquals(lines.length, 4, `manifest.txt lines: ${JSON.stringify(lines)}`);
      assert(lines.includes("line\\nbreak.png"), `escaped name in ${JSON.stringify(lines)}`);
      return `${csvs.length} metrics.csv read back by Python's csv module: 4 rows of equal width; ` +
        "manifest.txt 4 lines, the line break written as \\n";
    },
  },
  {
    name: "an image behind a symlinked subfolder edited in place",
    code: 0,
    words: [],
    async act(s, stage) {
      const photos = join(s.dir, "photos");
      const elsewhere = join(s.dir, "elsewhere");
      await Deno.mkdir(join(photos, "own"), { recursive: true });
      await Deno.mkdir(elsewhere);
      await Deno.writeFile(join(photos, "own", "a.png"), await solidPng(16, 40));
      await Deno.writeFile(join(elsewhere, "b.png"), await solidPng(16, 120));
      await Deno.symlink(elsewhere, join(photos, "linked"));
      await folderConfig(s, stage, photos, "links");
      const first = await s.run(["run", "--json"]);
      assertEquals(first.code, 0, first.stderr);
      before.set(s.dir, await readTree(join(s.dir, "links")));
      await Deno.writeFile(join(elsewhere, "b.png"), await solidPng(16, 200));
      return await s.run(["run", "--json"]);
    },
    async kept(s, _stage, r) {
      const ran = ranTasks(r);
      assertEquals(ran.preprocess, 1, `the edited image was not noticed: ${JSON.stringify(ran)}`);
      const [was, now] = [before.get(s.dir)!, await readTree(join(s.dir, "links"))];
      before.delete(s.dir);
      const npz = [...now.keys()].find((k) => k.startsWith("linked/") && k.endsWith(".npz"))!;
      assert(
        was.get(npz)!.some((b, i) => b !== now.get(npz)![i]),
        `${npz} still holds the old latents`,
      );
      return "the edit behind the link noticed: preprocess reran 1 image; its latents changed";
    },
  },
  {
    name: "a broken link and a link loop in the dataset folder",
    code: 1,
    words: ["dead.png is a broken link", "is a link loop"],
    async act(s, stage) {
      const photos = join(s.dir, "photos");
      await Deno.mkdir(photos);
      await Deno.writeFile(join(photos, "a.png"), await solidPng(16, 40));
      await Deno.writeFile(join(photos, "b.png"), await solidPng(16, 160));
      await Deno.symlink(join(s.dir, "gone.png"), join(photos, "dead.png"));
      await Deno.symlink(photos, join(photos, "again"));
      await folderConfig(s, stage, photos, "links");
      return await s.run(["run", "--json"]);
    },
    async kept(s) {
      const manifest = JSON.parse(
        new TextDecoder().decode((await readTree(join(s.dir, "links"))).get("manifest.json")),
      );
      assertEquals(Object.keys(manifest.images).sort(), ["a", "b"]);
      return "the other 2 images built and published; the two entries failed with their reasons";
    },
  },
  {
    name: "a link to a file outside the granted paths, under deno task run",
    code: 1,
    words: ["hostname.png links to", "outside the dataset folder and the paths this run may read"],
    async act(s, stage) {
      const photos = join(s.dir, "photos");
      await Deno.mkdir(photos);
      await Deno.writeFile(join(photos, "a.png"), await solidPng(16, 40));
      const secret = await Deno.makeTempDir({ prefix: "latentforge-secret-" });
      secrets.set(s.dir, secret);
      await Deno.writeTextFile(join(secret, "hostname"), "db-server-7\n");
      await Deno.symlink(join(secret, "hostname"), join(photos, "hostname.png"));
      await folderConfig(s, stage, photos, join(s.dir, "links"));
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["task", "run", "--json", "--config", s.configPath, "--cache", s.cache],
        cwd: REPO,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return parse(out.code, out.stdout, out.stderr);
    },
    async kept(s) {
      const digest = createHash("sha256").update("db-server-7\n").digest("hex");
      assertEquals(await Deno.stat(s.objectPath(digest)).then(() => true, () => false), false);
      const manifest = JSON.parse(
        new TextDecoder().decode((await readTree(join(s.dir, "links"))).get("manifest.json")),
      );
      assertEquals(Object.keys(manifest.images), ["a"]);
      return "the linked file was never read into the store; the other image published";
    },
    async cleanup(s) {
      const secret = secrets.get(s.dir);
      secrets.delete(s.dir);
      if (secret) await Deno.remove(secret, { recursive: true });
    },
  },
  {
    name: "two runs with their own caches publishing to one out_dir at once",
    code: 0,
    words: [],
    async act(s, stage) {
      const other = await stage.copy();
      others.set(s.dir, other);
      const shared = join(s.dir, "shared");
      await s.patchConfig({ package: { out_dir: shared } });
      await other.patchConfig({ package: { out_dir: shared } });
      const [a, b] = await Promise.all([s.run(["run", "--json"]), other.run(["run", "--json"])]);
      assertEquals(b.code, 0, `the other run: ${b.stderr}`);
      return a;
    },
    async kept(s) {
      const other = others.get(s.dir)!;
      try {
        await consistentFolder(join(s.dir, "shared"));
        const beside = (await Array.fromAsync(Deno.readDir(s.dir))).map((e) => e.name)
          .filter((n) => n.startsWith("shared."));
        assertEquals(beside, [], "leftovers beside the shared folder");
        return "both exit 0; the folder holds exactly the files its marker names; no leftovers";
      } finally {
        await other.cleanup();
        others.delete(s.dir);
      }
    },
  },
  {
    name: "SIGTERM while package publishes",
    code: 130,
    words: ["interrupted"],
    async act(s) {
      // The dataset is published again (from the cache) into an empty place.
      await Deno.remove(s.out, { recursive: true });
      return await termWhenPublishing(s, ["run", "--json"]);
    },
    async kept(s, stage) {
      const again = await s.run(["run", "--json"]);
      assertEquals(again.code, 0, again.stderr);
      assertSameDataset(await s.published(), stage.dataset, "after the rerun");
      assertEquals(await leftovers(s), [], "leftovers beside out/ after the rerun");
      assertEquals(await kvKeys(s, KEYS.failures("package")), 0, "package recorded as failed");
      return "the rerun finished byte-identical to clean; nothing left beside out/";
    },
  },
];

const mounts = new Map<string, Exclude<Awaited<ReturnType<typeof mountTmpfs>>, string>>();
const before = new Map<string, Map<string, Uint8Array>>();
const secrets = new Map<string, string>();
const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** A config for a folder dataset (no labels), publishing to `outDir`. */
async function folderConfig(s: Scene, stage: Stage, folder: string, outDir: string) {
  await Deno.writeTextFile(
    s.configPath,
    JSON.stringify({
      dataset: { kind: "folder", path: folder },
      preprocess: { size: 16 },
      model: { ...await model(s), encoder: { path: stage.vae.encoder } },
      optimize: { max_steps: 2, batch_size: 4 },
      package: { out_dir: outDir, samples: 0 },
    }),
  );
}
const others = new Map<string, Scene>();

/** Unmounts what a row mounted for the scene. */
async function unmount(s: Scene): Promise<void> {
  const fs = mounts.get(s.dir);
  if (!fs) return;
  mounts.delete(s.dir);
  // The scene's links to the mount go first, so removing the scene never reaches into it.
  for (const link of [s.cache, join(s.dir, "ro")]) {
    if ((await Deno.lstat(link).catch(() => null))?.isSymlink) await Deno.remove(link);
  }
  await fs.close();
}

async function model(s: Scene): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(s.configPath)).model;
}

/** Bytes of the files under a folder. */
async function du(dir: string): Promise<number> {
  let total = 0;
  for (const bytes of (await readTree(dir)).values()) total += bytes.length;
  return total;
}

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { CorruptObjectError, ObjectStore } from "../lib/store/objects.ts";
import { partialDir, publishDirectory, publishTarget } from "../lib/store/publish.ts";
import { checkOutDir, OutDirError } from "../lib/store/out_dir.ts";
import { MARKER, readMarker } from "../lib/store/out_marker.ts";
import { requirement, testIf } from "./fixtures/skip.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** Awaits `fn` and returns its error, failing unless it rejects with an instance of `type`. */
async function rejects<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
  includes = "",
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof type)) throw e;
    assertStringIncludes(e.message, includes);
    return e;
  }
  throw new Error(`expected a rejection with ${type.name}`);
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-publish-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function dataset(store: ObjectStore, tag: string): Promise<Record<string, string>> {
  return {
    "train/latents.npz": await store.put(enc(`latents ${tag}`)),
    "train/manifest.txt": await store.put(enc(`a.png\nb.png\n${tag}\n`)),
    "manifest.json": await store.put(enc(JSON.stringify({ tag }))),
  };
}

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, prefix: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(join(d, e.name), `${prefix}${e.name}/`);
      else out[`${prefix}${e.name}`] = await Deno.readTextFile(join(d, e.name));
    }
  };
  await walk(dir, "");
  return out;
}

Deno.test("a non-empty folder latentforge did not create is refused, its files untouched", async () => {
  await withDir(async (dir) => {
    const store = new ObjectStore(join(dir, "cache"));
    const out = join(dir, "photos");
    await Deno.mkdir(join(out, "2019"), { recursive: true });
    await Deno.writeTextFile(join(out, "notes.txt"), "mine");
    await Deno.writeTextFile(join(out, "2019", "beach.jpg"), "jpeg");
    const e = await rejects(() => checkOutDir(out), OutDirError);
    assertStringIncludes(e.message, out);
    assertStringIncludes(e.message, "2019/, notes.txt");
    assertStringIncludes(e.message, "did not create it");
    const a = await dataset(store, "a");
    await rejects(() => publishDirectory(store, a, out), OutDirError);
    assertEquals(await tree(out), { "notes.txt": "mine", "2019/beach.jpg": "jpeg" });
    const siblings = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(siblings, ["cache", "photos"], "nothing was left beside the refused folder");

    // A file where the folder should be, too.
    await Deno.writeTextFile(join(dir, "file"), "x");
    await rejects(() => checkOutDir(join(dir, "file")), OutDirError, "is a file");
    // An empty folder or a missing one is fine.
    await Deno.mkdir(join(dir, "empty"));
    await checkOutDir(join(dir, "empty"));
    await checkOutDir(join(dir, "missing", "deeper"));
  });
});

Deno.test("publishing creates, then does nothing, then repairs files changed in place", async () => {
  await withDir(async (dir) => {
    const store = new ObjectStore(join(dir, "cache"));
    const out = join(dir, "out", "demo");
    const objects = await dataset(store, "a");
    const first = await publishDirectory(store, objects, out, { configFile: "config/demo.json" });
    assertEquals(first.action, "created");
    const { [MARKER]: _marker, ...want } = await tree(out);
    const marker = await readMarker(out);
    assert(marker && marker !== "unreadable");
    assertEquals(marker.files, objects);
    assertEquals(marker.cache, join(dir, "cache"));
    assertStringIncludes(marker.config ?? "", "config/demo.json");
    assertEquals(marker.complete, true);

    assertEquals((await publishDirectory(store, objects, out)).action, "unchanged");

    // Deleted, overwritten with other bytes, and replaced with a same-size edit whose mtime
    // was put back: the first two are seen by size and mtime; the third only by digest.
    await Deno.remove(join(out, "manifest.json"));
    await Deno.writeTextFile(join(out, "train", "manifest.txt"), "edited by hand\n");
    const npz = join(out, "train", "latents.npz");
    const info = await Deno.stat(npz);
    await Deno.writeTextFile(npz, "LATENTS a");
    await Deno.utime(npz, info.atime!, info.mtime!);
    const repaired = await publishDirectory(store, objects, out);
    assertEquals(repaired.action, "repaired");
    assertEquals(repaired.repaired, ["manifest.json", "train/manifest.txt"]);
    assertEquals((await tree(out))["train/latents.npz"], "LATENTS a");
    const deep = await publishDirectory(store, objects, out, { deep: true });
    assertEquals(deep.repaired, ["train/latents.npz"]);
    const { [MARKER]: _again, ...now } = await tree(out);
    assertEquals(now, want);
    assertEquals((await publishDirectory(store, objects, out, { deep: true })).action, "unchanged");
  });
});

Deno.test("a marked folder holding the user's own files is refused, not emptied", async () => {
  await withDir(async (dir) => {
    const store = new ObjectStore(join(dir, "cache"));
    const out = join(dir, "out");
    await publishDirectory(store, await dataset(store, "a"), out);
    await Deno.writeTextFile(join(out, "train", "my_notes.md"), "keep me");
    const e = await rejects(
      async () => publishDirectory(store, await dataset(store, "b"), out),
      OutDirError,
    );
    assertStringIncludes(e.message, "train/my_notes.md");
    assertEquals((await tree(out))["train/my_notes.md"], "keep me");
    assertEquals((await tree(out))["manifest.json"], JSON.stringify({ tag: "a" }));
  });
});

Deno.test("a partial dataset goes beside a complete one; a complete one replaces a partial one", async () => {
  await withDir(async (dir) => {
    const store = new ObjectStore(join(dir, "cache"));
    const out = join(dir, "out");
    const full = await dataset(store, "full");
    await publishDirectory(store, full, out);
    const limited = await dataset(store, "limit 5");
    assertEquals(await publishTarget(out, { partial: true }), partialDir(out));
    const r = await publishDirectory(store, limited, out, { partial: "--limit 5" });
    assertEquals(r.dir, partialDir(out));
    assertEquals(r.keptComplete, out);
    assertEquals((await tree(out))["manifest.json"], JSON.stringify({ tag: "full" }));
    assertEquals(
      (await tree(partialDir(out)))["manifest.json"],
      JSON.stringify({ tag: "limit 5" }),
    );
    const m = await readMarker(partialDir(out));
    assert(m && m !== "unreadable");
    assertEquals([m.complete, m.partial], [false, "--limit 5"]);

    // Into an empty place a partial dataset goes where asked, and a complete one replaces it.
    const other = join(dir, "other");
    assertEquals(
      (await publishDirectory(store, limited, other, { partial: "--limit 5" })).dir,
      other,
    );
    assertEquals(await publishTarget(other, { partial: true }), other);
    const again = await publishDirectory(store, full, other);
    assertEquals([again.dir, again.action], [other, "replaced"]);
    assertEquals((await tree(other))["manifest.json"], JSON.stringify({ tag: "full" }));
  });
});

Deno.test("a corrupt object is never published: it is quarantined and the folder kept", async () => {
  await withDir(async (dir) => {
    const store = new ObjectStore(join(dir, "cache"));
    const out = join(dir, "out");
    await publishDirectory(store, await dataset(store, "a"), out);
    const before = await tree(out);
    const objects = await dataset(store, "b");
    const bad = objects["train/latents.npz"];
    const bytes = await Deno.readFile(store.path(bad));
    bytes[0] ^= 0x01;
    await Deno.writeFile(store.path(bad), bytes);
    const e = await rejects(() => publishDirectory(store, objects, out), CorruptObjectError);
    assertEquals(e.digest, bad);
    assert(!(await store.has(bad)), "the corrupt object is still in the store");
    assert(store.damaged.has(bad));
    assertStringIncludes(e.quarantinedTo, join(dir, "cache", "quarantine"));
    assertEquals(await tree(out), before);
    const siblings = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(siblings, ["cache", "out"]);
  });
});

Deno.test("leftovers of a live publisher are kept, those of a dead one removed", async () => {
  await withDir(async (dir) => {
    const store = new ObjectStore(join(dir, "cache"));
    const out = join(dir, "out");
    // A copy being written aside is locked by its writer for as long as it lives.
    const live = `${out}.tmp-4242-0a1b2c3d`;
    await Deno.mkdir(live);
    const writer = await Deno.open(live, { read: true });
    await writer.lock(true);
    // Its writer gone, nobody holds the lock; an `.old-` folder is a swap cut short.
    await Deno.mkdir(`${out}.tmp-4243-0a1b2c3d`);
    await Deno.mkdir(`${out}.old-4244-0a1b2c3d`);
    // Not names latentforge gives: never touched.
    await Deno.mkdir(`${out}.tmp-backup`);
    await Deno.mkdir(`${out}.old`);
    try {
      await publishDirectory(store, await dataset(store, "a"), out);
    } finally {
      writer.close();
    }
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(left, ["cache", "out", "out.old", "out.tmp-4242-0a1b2c3d", "out.tmp-backup"]);
  });
});

const REPO = fileURLToPath(new URL("../", import.meta.url));

/**
 * Writes a script that publishes `rounds` datasets of its own (tagged by its third argument)
 * from a cache of its own (first argument) to a folder (second argument), as a run would.
 */
async function publisherScript(dir: string, rounds: number): Promise<string> {
  const script = join(dir, `publisher-${rounds}.ts`);
  await Deno.writeTextFile(
    script,
    `import { ObjectStore } from ${JSON.stringify(join(REPO, "lib/store/objects.ts"))};
     import { publishDirectory } from ${JSON.stringify(join(REPO, "lib/store/publish.ts"))};
     const [cache, out, tag] = Deno.args;
     const store = new ObjectStore(cache);
     for (let round = 0; round < ${rounds}; round++) {
       const objects = {};
       for (let f = 0; f < 4; f++) {
         objects[\`s\${f % 2}/file\${f}.bin\`] = await store.put(
           new TextEncoder().encode(\`\${tag} round \${round} file \${f}\`.repeat(2000)),
         );
       }
       await publishDirectory(store, objects, out);
     }`,
  );
  return script;
}

function publisher(script: string, dir: string, out: string, tag: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script, join(dir, `cache-${tag}`), out, tag],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * The kernel's table of file locks, /proc/locks, read by `cat` (a test run's read grant does
 * not reach /proc), or null where there is none.
 */
async function procLocks(): Promise<string | null> {
  try {
    const out = await new Deno.Command("cat", { args: ["/proc/locks"], stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch (e) {
    // No cat on this system: the table cannot be read.
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Resolves once process `pid` waits for a flock on `path`: the kernel lists each waiter in
 * /proc/locks (`-> FLOCK ADVISORY WRITE <pid> <dev>:<inode> …`). Polled, since no event says
 * so; how often changes only how soon the wait is seen, never what is seen.
 */
async function waitsForLock(pid: number, path: string, signal: AbortSignal): Promise<void> {
  const inode = (await Deno.stat(path)).ino;
  const waiter = new RegExp(`-> FLOCK +ADVISORY +WRITE +${pid} +[0-9a-f]+:[0-9a-f]+:${inode} `);
  while (!waiter.test(await procLocks() ?? "")) {
    signal.throwIfAborted();
    await new Promise((r) => setTimeout(r, 10));
  }
}

const lockTable = requirement(
  "platform",
  (await procLocks()) !== null,
  "/proc/locks, where the test sees a process wait for a lock, is Linux's",
);

testIf(lockTable, {
  name: "a publish waits while another holds the folder half-swapped, then replaces it whole",
  fn: async () => {
    await withDir(async (dir) => {
      const store = new ObjectStore(join(dir, "cache"));
      const out = join(dir, "out");
      await publishDirectory(store, await dataset(store, "a"), out);
      const script = await publisherScript(dir, 1);
      // Another publisher between the two renames of its swap: it holds the parent's lock and
      // has moved the published folder aside, so there is no `out` for now.
      const parent = await Deno.open(dir, { read: true });
      await parent.lock(true);
      const aside = `${out}.old-${Deno.pid}-0a1b2c3d`;
      await Deno.rename(out, aside);
      const second = publisher(script, dir, out, "b");
      const seen = new AbortController();
      let outcome: string;
      try {
        outcome = await Promise.race([
          second.status.then((s) => `finished (exit ${s.code}) while the folder was half-swapped`),
          waitsForLock(second.pid, dir, seen.signal).then(() => "waits for the lock"),
        ]);
      } finally {
        seen.abort();
        // The first publisher completes its swap and lets go.
        await Deno.rename(aside, out).catch((e) => {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        });
        parent.close();
      }
      const result = await second.output();
      assertEquals(outcome, "waits for the lock");
      assertEquals(result.code, 0, new TextDecoder().decode(result.stderr));
      const files = await tree(out);
      const marker = await readMarker(out);
      assert(marker && marker !== "unreadable");
      assertEquals(Object.keys(files).sort(), [...Object.keys(marker.files), MARKER].sort());
      for (const [rel, text] of Object.entries(files)) {
        if (rel !== MARKER) assertEquals(text.slice(0, 1), "b", `${rel} is not the second's`);
      }
      const left = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("out"));
      assertEquals(left, ["out"]);
    });
  },
});

Deno.test("four processes with their own caches publishing to one folder never leave it inconsistent", async () => {
  await withDir(async (dir) => {
    const out = join(dir, "out");
    const script = await publisherScript(dir, 15);
    const runs = ["a", "b", "c", "d"].map((tag) => publisher(script, dir, out, tag).output());
    for (const r of await Promise.all(runs)) {
      assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
    }
    const marker = await readMarker(out);
    assert(marker && marker !== "unreadable");
    const files = await tree(out);
    assertEquals(
      Object.keys(files).sort(),
      [...Object.keys(marker.files), MARKER].sort(),
      "the marker names exactly the files present",
    );
    const tag = files["s0/file0.bin"].slice(0, 1);
    for (const [rel, text] of Object.entries(files)) {
      if (rel !== MARKER) assertEquals(text.slice(0, 1), tag, `${rel} is from another run`);
    }
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("out"));
    assertEquals(left, ["out"], "leftovers beside the folder after every run ended");
  });
});

import { createHash } from "node:crypto";
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { openRecords, RECORD_FORMAT } from "../lib/store/records.ts";

// The format-1 encodings, written out here on their own so that a change to the engine's key
// or digest code cannot make this test agree with it by accident.
const sha = (s: string | Uint8Array) => createHash("sha256").update(s).digest("hex");
const canonical = (v: unknown): string => {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${
    Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(",")
  }}`;
};
const hashJson = (v: unknown) => sha(canonical(v));

/** Writes the cache a format-1 latentforge leaves after `run` of the toy pipeline. */
async function writeFormat1Cache(p: ToyProject, count: number): Promise<string> {
  const store = new ObjectStore(p.cache);
  const kv = await Deno.openKv(join(p.cache, "records.sqlite3"));
  const runId = Date.now() - 60_000;
  const text = (s: string) => new TextEncoder().encode(s);
  const tasks: Record<string, { slice: Record<string, unknown>; prefix: string }> = {};
  const slices: Record<string, Record<string, unknown>> = {
    numbers: { "toy.count": count },
    square: { "toy.fail_ids": [] },
    scale: { "toy.scale": 1 },
    offset: { "toy.offset": 0 },
    total: { "toy.out": p.out },
  };
  const op = () => kv.atomic();
  for (const [task, slice] of Object.entries(slices)) {
    const s = sha(await Deno.readFile(join(p.dir, "tasks", `${task}.ts`)));
    const c = hashJson(slice);
    const prefix = hashJson({ task, v: "1", s, c });
    tasks[task] = { slice, prefix };
    await op().set(["prefix", task, prefix], { v: "1", s, c }).set(["cfg", task, c], slice)
      .commit();
  }
  const record = async (
    task: string,
    id: string,
    inputs: Record<string, string>,
    params: unknown,
    objects: Record<string, string>,
    meta: unknown,
  ) => {
    const q = params === undefined ? undefined : sha(canonical(params));
    const k = sha(`${tasks[task].prefix}\n${canonical(inputs)}\n${q ?? ""}`);
    const d = hashJson({ o: objects, m: meta });
    const rec: Record<string, unknown> = {
      k,
      x: tasks[task].prefix,
      i: inputs,
      o: objects,
      m: meta,
      d,
      r: runId,
      ms: 3,
    };
    if (q !== undefined) rec.q = q;
    await op().set(["act", task, id], rec).commit();
    return d;
  };
  const values = Array.from({ length: count }, (_, i) => i);
  await record("numbers", "*", {}, undefined, {
    list: await store.putJson(values),
  }, count);
  const offsets: [string, string][] = [];
  const lines: string[] = [];
  for (const v of values) {
    const id = String(v);
    const sq = await record("square", id, {}, { value: v }, {
      value: await store.put(text(String(v * v))),
    }, null);
    const sc = await record("scale", id, { square: sq }, undefined, {
      value: await store.put(text(String(v * v))),
    }, null);
    offsets.push([
      id,
      await record("offset", id, { scale: sc }, undefined, {
        value: await store.put(text(String(v * v))),
      }, null),
    ]);
    lines.push(`${id} ${v * v}`);
  }
  offsets.sort((a, b) => a[0] < b[0] ? -1 : 1);
  const report = `${lines.join("\n")}\nfailed: \n`;
  await record(
    "total",
    "*",
    { offset: sha(canonical({ items: offsets, fails: [] })) },
    undefined,
    { report: await store.put(text(report)) },
    { items: count, failed: 0 },
  );
  // A superseded record, an old failure and the run history of format 1.
  await op().set(["old", "scale", "3", runId], {
    k: "f".repeat(64),
    x: tasks.scale.prefix,
    i: {},
    o: {},
    m: null,
    d: "e".repeat(64),
    r: runId - 1,
    ms: 1,
  }).set(["fail", "square", "99"], {
    k: "a".repeat(64),
    reason: "boom",
    kind: "Error",
    attempts: 1,
    r: runId,
    at: new Date().toISOString(),
  }).set(["run", runId], {
    id: runId,
    started: new Date().toISOString(),
    status: "ok",
    targets: ["total"],
    pid: 1,
  }).set(["task", "scale"], { lastRun: "2025-01-01T00:00:00.000Z", run: runId }).commit();
  await store.syncDirs();
  kv.close();
  return report;
}

Deno.test("a cache written with format-1 records is migrated and read as cache hits", async () => {
  const p = await ToyProject.create({ count: 12 });
  try {
    const report = await writeFormat1Cache(p, 12);
    // The MD5 index format 1 kept beside the store becomes aliases.
    const imageDigest = await new ObjectStore(p.cache).put(new TextEncoder().encode("image"));
    const md5 = createHash("md5").update("image").digest("hex");
    await Deno.mkdir(join(p.cache, "md5", md5.slice(0, 2)), { recursive: true });
    await Deno.writeTextFile(
      join(p.cache, "md5", md5.slice(0, 2), md5),
      JSON.stringify({ digest: imageDigest, size: 5 }),
    );

    // Records from before code identity are adopted once, and the plan says so in one line.
    const adoptedLine = "38 records adopted without library identity (numbers 1, square 12, " +
      "scale 12, offset 12, total 1); --force TASK recomputes them";
    const logs = (r: { events: Record<string, unknown>[] }) =>
      r.events.filter((e) => e.event === "log").map((e) => e.message);
    const dry = await p.run(["run", "--dry-run", "--json"]);
    assertEquals(dry.code, 0, dry.stderr);
    assertEquals(logs(dry), [adoptedLine]);
    const r = await p.run(["run", "--json"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(logs(r), [adoptedLine]);
    assertEquals(
      Object.fromEntries(ToyProject.ran(r)),
      { numbers: 0, square: 0, scale: 0, offset: 0, total: 0 },
    );
    const again = await p.run(["run", "--json"]);
    assertEquals(logs(again), []);
    assertEquals([...ToyProject.ran(again).values()].reduce((a, b) => a + b, 0), 0);
    // A cache hit publishes the recorded output.
    assertEquals(await Deno.readTextFile(p.out), report);

    // The database as it is on disk: the format mark, and no format-1 key left.
    const kv = await Deno.openKv(join(p.cache, "records.sqlite3"));
    try {
      const format = await kv.get<{ version: number }>(["format"]);
      assertEquals(format.value?.version, RECORD_FORMAT);
      for (const old of ["act", "old", "fail", "prefix", "cfg", "task"]) {
        const left = await Array.fromAsync(kv.list({ prefix: [old] }));
        assertEquals(left.length, 0, `format-1 "${old}" records remain`);
      }
    } finally {
      kv.close();
    }
    const records = await openRecords(p.cache);
    try {
      const scale = await records.actions("scale");
      assertEquals(scale.size, 12);
      assertEquals(Object.keys(scale.get("3")!.inputs), ["square"]);
      assertEquals((await records.superseded("scale")).get("3")?.[0].run, scale.get("3")!.run - 1);
      assertEquals((await records.failures("square")).get("99")?.reason, "boom");
      assertEquals((await records.lastRuns()).get("scale")?.lastRun, "2025-01-01T00:00:00.000Z");
      assertEquals((await records.aliases()).get(`md5:${md5}`), imageDigest);
    } finally {
      records.close();
    }
    await Deno.stat(join(p.cache, "md5")).then(
      () => assert(false, "the md5/ files were kept after their migration"),
      () => {},
    );

    // Explaining reads the migrated components: a config change names the field.
    const why = await p.run(["explain", "offset", "5", "--set", "toy.offset=2"]);
    assertEquals(why.code, 0, why.stderr);
    assertStringIncludes(why.stdout, "config toy.offset: 0 → 2");
  } finally {
    await p.cleanup();
  }
});

Deno.test("a cache from a newer record format is refused with a message saying what to do", async () => {
  const p = await ToyProject.create({ count: 2 });
  try {
    await Deno.mkdir(p.cache, { recursive: true });
    const kv = await Deno.openKv(join(p.cache, "records.sqlite3"));
    await kv.set(["format"], { version: RECORD_FORMAT + 1 });
    kv.close();
    const r = await p.run(["run"]);
    assertEquals(r.code, 2, r.stderr);
    assertStringIncludes(r.stderr, `record format ${RECORD_FORMAT + 1}`);
    assertStringIncludes(r.stderr, "upgrade latentforge, or use another --cache");
  } finally {
    await p.cleanup();
  }
});

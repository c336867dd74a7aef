import { createHash } from "node:crypto";
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { ALL_FAULTS, startMirror } from "./fixtures/mirror.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { Running, someFile } from "./fixtures/running.ts";
import { type ActionRecord, openRecords } from "../lib/store/records.ts";
import { tasksRan } from "./fixtures/project.ts";

/** The model section is required by the schema; these runs stop before any model is read. */
const NO_MODEL = {
  encoder: { path: "unused.onnx" },
  decoder: { path: "unused.onnx" },
  scaling_factor: 1,
};

async function records(cache: string, task: string): Promise<Map<string, ActionRecord>> {
  const records = await openRecords(cache);
  try {
    return await records.actions(task);
  } finally {
    records.close();
  }
}

Deno.test("1,000 images with 20% of requests faulted: all verified, none wrong, a 404 reported", async () => {
  const mirror = await startMirror({
    count: 1000,
    imageSize: 16,
    imageKind: "noise",
    faults: { rate: 0.2, kinds: ALL_FAULTS },
    alwaysFail404Ids: [500],
    seed: 11,
  });
  const tree = await Deno.makeTempDir();
  let cleanup = () => Promise.resolve();
  try {
    const p = await PipelineProject.create({
      dataset: { kind: "ffhq", spec: { url: mirror.specUrl } },
      download: {
        stall_s: 1,
        quota_backoff_s: 0.2,
        attempts: 10,
        concurrency_per_host: 16,
        materialize: tree,
      },
      model: NO_MODEL,
    });
    cleanup = () => p.cleanup();
    const r = await p.run(["run", "verify-sizes", "--json"]);
    assertEquals(r.code, 1, r.stderr);
    const failed = r.events.filter((e) => e.event === "item" && e.status === "failed");
    assertEquals(failed.map((e) => [e.task, e.item]), [["fetch-images", "500"]]);
    assertMatch(String(failed[0].reason), /404/);
    // 500 is fetch-images' failure, with its reason; verify-sizes verified every other image.
    const verify = r.events.find((e) => e.event === "task-end" && e.task === "verify-sizes")!;
    assertEquals(verify.status, "ok", String(verify.reason));
    assertEquals(verify.counts, { total: 999, ran: 999, cached: 0, failed: 0, final: true });
    // Every kind of fault was injected, and every accepted file is byte-exact.
    for (const kind of ALL_FAULTS) {
      assert(mirror.stats.faults[kind] > 0, `no ${kind} fault was injected`);
    }
    const spec = JSON.parse(new TextDecoder().decode(mirror.specBytes));
    const fetched = await records(p.cache, "fetch-images");
    assertEquals(fetched.size, 999);
    for (const [id, rec] of fetched) {
      const bytes = await Deno.readFile(
        join(p.cache, "objects", rec.objects.image.slice(0, 2), rec.objects.image),
      );
      assertEquals(
        createHash("md5").update(bytes).digest("hex"),
        spec[id].image.file_md5,
        `image ${id}`,
      );
    }
    // download.materialize laid the images out in the familiar tree, as hard links.
    const laid = join(tree, spec["17"].image.file_path);
    assertEquals((await Deno.stat(laid)).nlink, 2);
    assertEquals(
      createHash("md5").update(await Deno.readFile(laid)).digest("hex"),
      spec["17"].image.file_md5,
    );
    // The rerun asks for the one failed item only.
    mirror.resetStats();
    const again = await p.run(["run", "verify-sizes", "--json"]);
    assertEquals(again.code, 1);
    assertEquals(tasksRan(again).get("fetch-images"), 0);
    assertEquals([...mirror.stats.requests.keys()].filter((k) => k.endsWith(".png")), [
      "images1024x1024/00000/00500.png",
    ]);
  } finally {
    await mirror.close();
    await cleanup();
    await Deno.remove(tree, { recursive: true });
  }
});

Deno.test("kill -9 during downloads: partial files resume with Range, finished ones are not fetched again", async () => {
  const mirror = await startMirror({
    count: 12,
    imageSize: 512,
    imageKind: "noise",
    throttleBytesPerSec: 1_000_000,
    seed: 2,
  });
  const p = await PipelineProject.create({
    dataset: { kind: "ffhq", spec: { url: mirror.specUrl } },
    download: { concurrency_per_host: 4 },
    model: NO_MODEL,
  });
  try {
    const spec = JSON.parse(new TextDecoder().decode(mirror.specBytes));
    const items = Object.entries(spec).map(([id, rec]) => {
      const image = (rec as { image: { file_path: string; file_size: number; file_md5: string } })
        .image;
      return { id, path: image.file_path, size: image.file_size, md5: image.file_md5 };
    });
    const partials = join(p.cache, "partial", "images");
    const sizeOf = new Map(items.map((i) => [i.md5, i.size]));
    // A partial file part-way: some bytes appended, not all of them.
    const partway = (name: string, info: Deno.FileInfo) =>
      info.size > 0 && info.size < (sizeOf.get(name) ?? 0);
    const run = new Running(p.command(["run", "fetch-images", "--json"]));
    const done = () =>
      run.events.filter((e) => e.event === "item" && e.task === "fetch-images").length;
    // Kill once 3 images are done and another one is part-way.
    await run.waitFor("3 finished images", () => done() >= 3);
    await run.waitForState("a partial download", () => someFile(partials, partway));
    run.kill("SIGKILL");
    const killed = await run.finish();
    assertEquals(killed.signal, "SIGKILL");
    const before = new Set(
      killed.events.filter((e) => e.event === "item" && e.status === "ran").map((e) =>
        String(e.item)
      ),
    );
    assert(before.size >= 3 && before.size < 12, `${before.size} images finished before the kill`);

    // What the kill left, per image: the bytes of its partial file, and whether its bytes are
    // already in the store under its MD5 (stored, but killed before the record was written).
    const left = new Map<string, number>();
    for await (const e of Deno.readDir(partials)) {
      left.set(e.name, (await Deno.stat(join(partials, e.name))).size);
    }
    const stored = new Set<string>();
    const records = await openRecords(p.cache);
    try {
      const aliases = await records.aliases();
      for (const { md5 } of items) if (aliases.has(`md5:${md5}`)) stored.add(md5);
    } finally {
      records.close();
    }
    assert([...left.values()].some((n) => n > 0), "the kill left a partial file with bytes");

    mirror.resetStats();
    const rerun = await p.run(["run", "fetch-images", "--json"]);
    assertEquals(rerun.code, 0, rerun.stderr);
    const want: Record<string, { requests: number; bytes: number }> = {};
    const got: Record<string, { requests: number; bytes: number }> = {};
    let resumed = 0;
    for (const item of items) {
      const have = left.get(item.md5) ?? 0;
      let expected = { requests: 1, bytes: item.size };
      if (before.has(item.id) || stored.has(item.md5) || have === item.size) {
        // Finished, stored, or every byte already received: nothing is fetched again.
        expected = { requests: 0, bytes: 0 };
      } else if (have > 0) {
        // Resumed with a Range request from the partial's length: only the rest is sent.
        expected = { requests: 1, bytes: item.size - have };
        resumed++;
      }
      want[item.id] = expected;
      got[item.id] = {
        requests: mirror.stats.requests.get(item.path) ?? 0,
        bytes: mirror.stats.bytesByPath.get(item.path) ?? 0,
      };
    }
    assertEquals(got, want);
    assert(resumed > 0, "a partial download was resumed");
    assertEquals(mirror.stats.rangeRequests, resumed);
  } finally {
    await mirror.close();
    await p.cleanup();
  }
});

Deno.test("bad specs and labels fail with the file, the line or item, and expected versus found", async () => {
  const mirror = await startMirror({ count: 6, imageSize: 16, imageKind: "noise", seed: 4 });
  const dir = await Deno.makeTempDir();
  const good = new TextDecoder().decode(mirror.specBytes);
  const spec = JSON.parse(good);
  const write = async (name: string, text: string) => {
    await Deno.writeTextFile(join(dir, name), text);
    return join(dir, name);
  };
  const run = async (config: Record<string, unknown>, target: string) => {
    const p = await PipelineProject.create({ model: NO_MODEL, ...config });
    try {
      return { p, r: await p.run(["run", target]) };
    } finally {
      await p.cleanup();
    }
  };
  try {
    const truncated = await write("truncated.json", good.slice(0, good.length / 2));
    const t = await run({ dataset: { kind: "ffhq", spec: { path: truncated } } }, "fetch-json");
    assertEquals(t.r.code, 1);
    assertStringIncludes(t.r.stderr, truncated);

    delete spec["3"].image.file_md5;
    const missing = await write("missing.json", JSON.stringify(spec));
    const m = await run({ dataset: { kind: "ffhq", spec: { path: missing } } }, "fetch-json");
    assertEquals(m.r.code, 1);
    assertMatch(
      m.r.stderr,
      /item "3" field image\.file_md5: expected 32 hex digits, found nothing/,
    );

    const csv = mirror.labelsCsv.split("\n");
    // Each case: the CSV, and the whole reason expected for it (given the file's path).
    const cases: [string, string, (path: string) => string][] = [
      [
        "header",
        ["image_number,age,gender", ...csv.slice(1)].join("\n"),
        (path) =>
          `${path}:1: wrong header: expected ${JSON.stringify(csv[0])}, ` +
          `found "image_number,age,gender"`,
      ],
      [
        "confidence",
        [csv[0], csv[1].replace(/,(0\.\d+|1),(male|female),/, ",high,$2,"), ...csv.slice(2)].join(
          "\n",
        ),
        (path) =>
          `${path}:2: column age_group_confidence: expected a number in [0, 1] ` +
          `(or -1 where no face was found), found "high"`,
      ],
      [
        "orphan",
        // The 6 rows, then a row for image 99, which the spec does not have, at line 8.
        [...csv.slice(0, -1), csv[1].replace(/^\d+/, "99"), ""].join("\n"),
        (path) =>
          `labels do not match the images: 0 image(s) without a label, 1 label(s) in ${path} ` +
          "without an image (first: 99 at line 8); labels.max_missing is 0",
      ],
    ];
    const p = await PipelineProject.create({
      dataset: { kind: "ffhq", spec: { url: mirror.specUrl } },
      model: NO_MODEL,
    });
    try {
      assertEquals((await p.run(["run", "verify-sizes"])).code, 0);
      for (const [name, text, reason] of cases) {
        const path = await write(`${name}.csv`, text);
        const r = await p.run([
          "run",
          "label-split",
          "--json",
          "--set",
          `labels.source.path=${path}`,
        ]);
        assertEquals(r.code, 1, `${name}: ${r.stderr}`);
        const end = r.events.find((e) => e.event === "task-end" && e.task === "label-split")!;
        assertEquals(end.reason, reason(path), name);
        // Nothing already completed is lost.
        assertEquals(tasksRan(r).get("fetch-images"), 0);
      }
    } finally {
      await p.cleanup();
    }
  } finally {
    await mirror.close();
    await Deno.remove(dir, { recursive: true });
  }
});

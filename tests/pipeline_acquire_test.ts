import { createHash } from "node:crypto";
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { ALL_FAULTS, startMirror } from "./fixtures/mirror.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { parse, ToyProject } from "./fixtures/toy_harness.ts";
import { type ActionRecord, openRecords } from "../lib/store/records.ts";

/** The model section is required by the schema; these runs stop before any model is read. */
const NO_MODEL = { encoder: { path: "unused.onnx" }, decoder: { path: "unused.onnx" } };

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
  try {
    const r = await p.run(["run", "verify-sizes", "--json"]);
    assertEquals(r.code, 1, r.stderr);
    const failed = r.events.filter((e) => e.event === "item" && e.status === "failed");
    assertEquals(failed.map((e) => [e.task, e.item]), [["fetch-images", "500"]]);
    assertMatch(String(failed[0].reason), /404/);
    const verify = r.events.find((e) => e.event === "task-end" && e.task === "verify-sizes")!;
    assertEquals(verify.status, "failed");
    assertStringIncludes(
      String(verify.reason),
      "expected 1000 verified images, found 999; missing 1: 500",
    );
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
    assertEquals(ToyProject.ran(again).get("fetch-images"), 0);
    assertEquals([...mirror.stats.requests.keys()].filter((k) => k.endsWith(".png")), [
      "images1024x1024/00000/00500.png",
    ]);
  } finally {
    await mirror.close();
    await p.cleanup();
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
    const total = [...mirror.files.values()].filter((f) => f.width === 512).reduce(
      (a, f) => a + f.bytes.length,
      0,
    );
    const child = p.command(["run", "fetch-images", "--json"]).spawn();
    const reader = child.stdout.getReader();
    let text = "";
    const reading = (async () => {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
      }
    })();
    // Kill once some images are done and others are part-way (their partial files have bytes).
    const partials = join(p.cache, "partial", "images");
    const partway = async () => {
      const sizes = await Array.fromAsync(Deno.readDir(partials)).then(
        (es) => Promise.all(es.map((e) => Deno.stat(join(partials, e.name)).then((i) => i.size))),
        () => [] as number[],
      );
      return sizes.some((n) => n > 0);
    };
    while ((text.match(/"task":"fetch-images","item"/g) ?? []).length < 2 || !(await partway())) {
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    await child.status;
    await reading;
    await child.stderr.cancel();
    const before = parse(0, new TextEncoder().encode(text), new Uint8Array()).events
      .filter((e) => e.event === "item" && e.status === "ran").map((e) => String(e.item));
    assert(
      before.length >= 3 && before.length < 12,
      `${before.length} images finished before the kill`,
    );

    mirror.resetStats();
    const rerun = await p.run(["run", "fetch-images", "--json"]);
    assertEquals(rerun.code, 0, rerun.stderr);
    assert(mirror.stats.rangeRequests > 0, "partial downloads resumed with Range requests");
    assert(
      mirror.stats.bytesServed < total - before.length * 1000,
      `the rerun fetched ${mirror.stats.bytesServed} of ${total} bytes`,
    );
    for (const id of before) {
      const path = `images1024x1024/00000/${id.padStart(5, "0")}.png`;
      assertEquals(mirror.stats.requests.get(path) ?? 0, 0, `${path} was requested again`);
    }
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
    const cases: [string, string, RegExp][] = [
      ["header", ["image_number,age,gender", ...csv.slice(1)].join("\n"), /header/],
      [
        "confidence",
        [csv[0], csv[1].replace(/,(0\.\d+|1),(male|female),/, ",high,$2,"), ...csv.slice(2)].join(
          "\n",
        ),
        /:2: column age_group_confidence: expected a number/,
      ],
      ["orphan", [...csv.slice(0, -1), csv[1].replace(/^\d+/, "99"), ""].join("\n"), /99/],
    ];
    const p = await PipelineProject.create({
      dataset: { kind: "ffhq", spec: { url: mirror.specUrl } },
      model: NO_MODEL,
    });
    try {
      assertEquals((await p.run(["run", "verify-sizes"])).code, 0);
      for (const [name, text, pattern] of cases) {
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
        assertStringIncludes(String(end.reason), path);
        assertMatch(String(end.reason), pattern);
        // Nothing already completed is lost.
        assertEquals(ToyProject.ran(r).get("fetch-images"), 0);
      }
    } finally {
      await p.cleanup();
    }
  } finally {
    await mirror.close();
    await Deno.remove(dir, { recursive: true });
  }
});

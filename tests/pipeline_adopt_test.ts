import { createHash } from "node:crypto";
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { type CopyKind, writeKaggleZip, writeLocalFolder } from "./fixtures/local_copy.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { writeTinyVae } from "./fixtures/vae.ts";
import { openRecords } from "../lib/store/records.ts";
import type { Reconciliation } from "../lib/dataset/reconciliation.ts";
import { mirroredConfig, tasksRan } from "./fixtures/project.ts";

/** The model section is required by the schema; runs that stop before any model is read. */
const NO_MODEL = {
  encoder: { path: "unused.onnx" },
  decoder: { path: "unused.onnx" },
  scaling_factor: 1,
};

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Image files the mirror was asked for. */
function imageRequests(mirror: { stats: { requests: Map<string, number> } }): string[] {
  return [...mirror.stats.requests.keys()].filter((k) =>
    k.endsWith(".png") || k.includes("drive/v3")
  )
    .sort();
}

/** The log lines one task printed, joined. */
function logOf(r: { events: Record<string, unknown>[] }, task: string): string {
  return r.events.filter((e) => e.event === "log" && e.task === task).map((e) => e.message)
    .join("\n");
}

/** The reconciliation fetch-images printed. */
function reconciliationOf(r: { events: Record<string, unknown>[] }): string {
  return String(
    r.events.find((e) =>
      e.event === "log" && e.task === "fetch-images" &&
      String(e.message).startsWith("reconciliation")
    )?.message ?? "",
  );
}

async function recordedIds(cache: string, task: string): Promise<Set<string>> {
  const records = await openRecords(cache);
  try {
    return new Set((await records.actions(task)).keys());
  } finally {
    records.close();
  }
}

Deno.test("adopting a Kaggle-like zip: the plan and the run reconcile it exactly, only the rest is downloaded, and it flows to the package", async () => {
  const mirror = await startMirror({ count: 24, imageSize: 32, imageKind: "noise", seed: 21 });
  const dir = await Deno.makeTempDir({ prefix: "lf_adopt_e2e_" });
  const vae = await writeTinyVae(join(dir, "vae"));
  const zip = join(dir, "ffhq-kaggle.zip");
  const copy = await writeKaggleZip(mirror, zip, {
    shares: { absent: 0.15, reencoded: 0.15, resized: 0.1, truncated: 0.1, jpeg: 0.05 },
    extras: 3,
    seed: 21,
  });
  const zipMd5 = md5(await Deno.readFile(zip));
  const ids = (kind: CopyKind) =>
    [...copy.kinds].filter(([, k]) => k === kind).map(([id]) => id).sort();
  const spec = JSON.parse(new TextDecoder().decode(mirror.specBytes));
  // download.materialize over a folder that already holds two files of the user's: one with
  // other bytes (never to be replaced), one with the right bytes.
  const tree = join(dir, "tree");
  const mine = join(tree, spec[ids("bytes")[0]].image.file_path);
  const same = join(tree, spec[ids("bytes")[1]].image.file_path);
  await Deno.mkdir(join(mine, ".."), { recursive: true });
  await Deno.writeTextFile(mine, "my own notes, not an image");
  await Deno.mkdir(join(same, ".."), { recursive: true });
  await Deno.writeFile(same, mirror.files.get(spec[ids("bytes")[1]].image.file_path)!.bytes);
  const mineBefore = await Deno.stat(mine);
  // Pinned, so that the plan knows the spec without fetching it.
  const p = await PipelineProject.create(mirroredConfig({
    dataset: { adopt: [zip] },
    labels: { split_by: ["gender"] },
    download: { verify_pixels: true, materialize: tree },
    preprocess: { size: 32 },
    model: { scaling_factor: 1.0, providers: ["cpu"], threads: 1 },
    optimize: { max_steps: 2, patience: 2, batch_size: 4 },
    package: { samples: 2 },
  }, { mirror, vae, pin: ["spec"] }));
  try {
    // Before the spec is fetched, a plan cannot list the items, and says so.
    const early = await p.run(["run", "fetch-images", "--dry-run", "--json"]);
    assertEquals(early.code, 0, early.stderr);
    assertStringIncludes(logOf(early, "fetch-images"), "known once fetch-json has run");
    assertEquals((await p.run(["run", "fetch-json"])).code, 0);

    mirror.resetStats();
    const plan = await p.run(["run", "--dry-run", "--json"]);
    assertEquals(plan.code, 0, plan.stderr);
    assertEquals(imageRequests(mirror), [], "a plan downloads nothing");
    const planned = reconciliationOf(plan);
    const counts = (text: string) =>
      ["adopted by bytes", "adopted by pixels", "rejected", "missing", "extra"].map((label) =>
        Number(new RegExp(`\\n  ${label}\\s+(\\d+)`).exec(text)?.[1])
      );
    const expected = [
      ids("bytes").length,
      ids("reencoded").length,
      ids("resized").length + ids("truncated").length + ids("jpeg").length,
      ids("absent").length,
      3,
    ];
    assertEquals(counts(planned), expected, planned);
    assertStringIncludes(planned, "would adopt");

    const run = await p.run(["run", "--json"]);
    assertEquals(run.code, 0, run.stderr);
    const done = reconciliationOf(run);
    assertEquals(counts(done), expected, done);
    // The plan and the run say the same, line for line, apart from the tense of the header.
    assertEquals(
      planned.split("\n").slice(1, -1),
      done.split("\n").slice(1, -1),
    );
    // Only what the zip lacks or holds wrongly was downloaded, each once.
    const refetched = [
      ...ids("absent"),
      ...ids("resized"),
      ...ids("truncated"),
      ...ids("jpeg"),
    ].map((id) => spec[id].image.file_path).sort();
    assertEquals(imageRequests(mirror), refetched);
    for (const path of refetched) assertEquals(mirror.stats.requests.get(path), 1);
    // Adopted images flowed on: every item was verified by its pixels and packaged.
    const ran = tasksRan(run);
    assertEquals(ran.get("verify-sizes"), 24);
    assertEquals(ran.get("optimize"), 24);

    // status --json gives the recorded reconciliation, with the exact lists.
    const status = await p.run(["status", "--json"]);
    const r = JSON.parse(status.stdout).reconciliation as Reconciliation;
    assertEquals([...r.adopted_bytes].sort(), ids("bytes"));
    assertEquals(r.adopted_pixels.map((x) => x.id).sort(), ids("reencoded"));
    assertEquals(r.missing.sort(), ids("absent"));
    assertEquals(r.extra.sort(), copy.extras.map((e) => `${zip}!${e}`).sort());
    assertEquals(
      r.rejected.map((x) => x.id).sort(),
      [...ids("resized"), ...ids("truncated"), ...ids("jpeg")].sort(),
    );
    for (const x of r.rejected) {
      if (ids("resized").includes(x.id)) assertEquals(x.reason, "16×16, spec says 32×32");
    }
    assertEquals(r.planned, false);

    // manifest.json and report.html carry it too.
    const manifest = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
    assertEquals(manifest.reconciliation.counts, r.counts);
    assertEquals(manifest.reconciliation.missing, r.missing);
    const html = await Deno.readTextFile(join(p.out, "report.html"));
    assertStringIncludes(html, "<h2>Local copies</h2>");
    assertMatch(
      html,
      new RegExp(`adopted by pixels</td><td class="num">${ids("reencoded").length}<`),
    );
    assertStringIncludes(html, "16×16, spec says 32×32");

    // The zip was only read; the user's file in the materialize folder was left alone and
    // said so; the others were laid out.
    assertEquals(md5(await Deno.readFile(zip)), zipMd5);
    assertEquals(await Deno.readTextFile(mine), "my own notes, not an image");
    assertEquals((await Deno.stat(mine)).mtime?.getTime(), mineBefore.mtime?.getTime());
    const logged = logOf(run, "fetch-images");
    assertStringIncludes(logged, `download.materialize left 1 file(s) as they were`);
    assertStringIncludes(logged, mine);
    for (const id of Object.keys(spec)) {
      const laid = join(tree, spec[id].image.file_path);
      if (laid === mine) continue;
      const bytes = await Deno.readFile(laid);
      if (ids("reencoded").includes(id)) assert(md5(bytes) !== spec[id].image.file_md5);
      else assertEquals(md5(bytes), spec[id].image.file_md5, `laid out ${laid}`);
    }

    // A rerun reads nothing again and asks the mirror for nothing.
    mirror.resetStats();
    const again = await p.run(["run", "--json"]);
    assertEquals(again.code, 0, again.stderr);
    assertEquals(tasksRan(again).get("fetch-images"), 0);
    assertEquals(imageRequests(mirror), []);
    assertEquals(counts(reconciliationOf(again)), expected);
    // The same reconciliation: the published dataset, which records it, is still current.
    assertEquals(tasksRan(again).get("package"), 0);
    const kept = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
    assertEquals(kept.reconciliation.counts, r.counts);
    // Without copies to adopt, the dataset no longer records a reconciliation: only package
    // reruns, and says so in its plan first.
    const unadopted = ["--set", "dataset.adopt=[]"];
    const replan = await p.run(["run", "--dry-run", "--json", ...unadopted]);
    const replanned = replan.events.filter((e) => e.event === "plan" && e.task === "package");
    assertEquals(replanned.map((e) => e.verdict), ["run"], replan.stdout);
    const rerun = await p.run(["run", "--json", ...unadopted]);
    assertEquals(rerun.code, 0, rerun.stderr);
    assertEquals(tasksRan(rerun).get("package"), 1);
    assertEquals(tasksRan(rerun).get("optimize"), 0);
    const plain = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
    assertEquals(plain.reconciliation, null);
  } finally {
    await mirror.close();
    await p.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kill -9 during adoption: the rerun adopts nothing twice and downloads nothing", async () => {
  const mirror = await startMirror({ count: 120, imageSize: 128, imageKind: "noise", seed: 8 });
  const dir = await Deno.makeTempDir({ prefix: "lf_adopt_kill_" });
  const tree = join(dir, "ffhq");
  await writeLocalFolder(mirror, tree, { extras: 0, seed: 8 });
  const p = await PipelineProject.create({
    dataset: {
      kind: "ffhq",
      spec: { url: mirror.specUrl, sha256: sha256(mirror.specBytes) },
      adopt: [tree],
    },
    model: NO_MODEL,
  });
  try {
    assertEquals((await p.run(["run", "fetch-json"])).code, 0);
    mirror.resetStats();
    const child = p.command(["run", "fetch-images", "--json", "--concurrency", "1"]).spawn();
    const reader = child.stdout.getReader();
    let text = "";
    // Killed once 15 items have finished and some of them are recorded (records reach the disk
    // in batches): each new line of output is the moment to look again.
    while (
      (text.match(/"task":"fetch-images","item"/g) ?? []).length < 15 ||
      (await recordedIds(p.cache, "fetch-images")).size === 0
    ) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel();
    await child.stderr.cancel();
    const first = await recordedIds(p.cache, "fetch-images");
    assert(first.size >= 1 && first.size < 120, `${first.size} items recorded before the kill`);

    const rerun = await p.run(["run", "fetch-images", "--json"]);
    assertEquals(rerun.code, 0, rerun.stderr);
    const again = rerun.events.filter((e) =>
      e.event === "item" && e.task === "fetch-images" && e.status === "ran"
    ).map((e) => String(e.item));
    assertEquals(again.filter((id) => first.has(id)), [], "adopted again after the kill");
    assertEquals(again.length + first.size, 120);
    assertEquals(imageRequests(mirror), [], "nothing was downloaded");
    const r = JSON.parse((await p.run(["status", "--json"])).stdout)
      .reconciliation as Reconciliation;
    // Copies the killed run adopted but had not recorded yet are in the store already (their MD5
    // aliases are written as soon as the bytes are durable): found there, not read again.
    assertEquals(r.counts.adopted_bytes + r.counts.stored_before, 120);
    assertEquals(r.counts.missing + r.counts.rejected, 0);
  } finally {
    await mirror.close();
    await p.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Drive API with a key: quota and rate-limit replies back the host off, a 404 fails its item, and the key is written nowhere", async () => {
  const key = `AIzaTest${crypto.randomUUID().replaceAll("-", "")}`;
  for (const quotaReason of ["downloadQuotaExceeded", "userRateLimitExceeded"] as const) {
    const mirror = await startMirror({
      count: 6,
      imageSize: 16,
      imageKind: "noise",
      seed: 5,
      googleDriveLinks: true,
      driveApi: { key, quotaReplies: 3, quotaReason, notFoundIds: [4] },
    });
    const p = await PipelineProject.create({
      dataset: { kind: "ffhq", spec: { url: mirror.specUrl } },
      download: {
        google_api_key_env: "LF_TEST_DRIVE_KEY",
        google_api_url: `${mirror.origin}/drive/v3`,
        quota_backoff_s: 0.2,
      },
      model: NO_MODEL,
    });
    try {
      const run = await p.run(["run", "verify-sizes", "--json"], { LF_TEST_DRIVE_KEY: key });
      assertEquals(run.code, 1, run.stderr);
      const failed = run.events.filter((e) => e.event === "item" && e.status === "failed");
      assertEquals(failed.map((e) => [e.task, e.item]), [["fetch-images", "4"]]);
      assertMatch(String(failed[0].reason), /HTTP 404/);
      assertEquals(mirror.stats.driveApi.quotaRefusals, 3);
      assert(mirror.stats.driveApi.keyInHeader >= 6, JSON.stringify(mirror.stats.driveApi));
      assertEquals(mirror.stats.driveApi.keyInQuery + mirror.stats.driveApi.badKey, 0);
      // Every file came through the API; the public links were never asked.
      assert(
        imageRequests(mirror).every((k) => k.startsWith("drive/v3/files/lfi")),
        imageRequests(mirror).join(" "),
      );
      // The quota replies were retried after the host's back-off, without using up attempts.
      const retries = run.events.filter((e) => e.event === "retry").map((e) => String(e.reason));
      assertEquals(retries.filter((t) => t.includes(quotaReason)).length, 3, retries.join("\n"));
      const status = await p.run(["status", "--json"], { LF_TEST_DRIVE_KEY: key });

      // Not in anything the runs printed, nor in any file they wrote.
      for (const out of [run.stdout, run.stderr, status.stdout, status.stderr]) {
        assert(!out.includes(key), "the key was printed");
      }
      const needle = new TextEncoder().encode(key);
      const checked: string[] = [];
      const walk = async (d: string) => {
        for await (const e of Deno.readDir(d)) {
          const path = join(d, e.name);
          if (e.isDirectory) await walk(path);
          else if (e.isFile) {
            checked.push(path.slice(p.dir.length + 1));
            const bytes = await Deno.readFile(path);
            assert(!contains(bytes, needle), `the key is in ${path}`);
          }
        }
      };
      await walk(p.dir);
      // The records (and their write-ahead log, if any), the config and the five images.
      assert(checked.includes("cache/records.sqlite3"), checked.join(" "));
      assert(checked.includes("config.json"), checked.join(" "));
      assert(checked.filter((f) => f.startsWith("cache/objects/")).length >= 5, checked.join(" "));
    } finally {
      await mirror.close();
      await p.cleanup();
    }
  }
});

Deno.test("an unset key variable and a missing copy stop the run with their names", async () => {
  const mirror = await startMirror({ count: 2, imageSize: 16, imageKind: "noise", seed: 6 });
  const p = await PipelineProject.create({
    dataset: { kind: "ffhq", spec: { url: mirror.specUrl } },
    download: { google_api_key_env: "LF_TEST_UNSET_DRIVE_KEY" },
    model: NO_MODEL,
  });
  try {
    const run = await p.run(["run", "fetch-images"]);
    assertEquals(run.code, 1);
    assertStringIncludes(
      run.stderr,
      "download.google_api_key_env names the environment variable LF_TEST_UNSET_DRIVE_KEY, but it is not set",
    );
    const missing = join(p.dir, "no-such-copy.zip");
    await p.writeConfig({
      dataset: { kind: "ffhq", spec: { url: mirror.specUrl }, adopt: [missing] },
      model: NO_MODEL,
    });
    // A config error (exit 2) before any work, in a run and in a plan.
    for (const args of [["run", "fetch-images"], ["run", "fetch-images", "--dry-run"]]) {
      const r = await p.run(args);
      assertEquals(r.code, 2, r.stderr);
      assertStringIncludes(
        r.stderr,
        `dataset.adopt[0]: ${missing}: no such folder or .zip archive`,
      );
    }
  } finally {
    await mirror.close();
    await p.cleanup();
  }
});

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    if (haystack[i] !== needle[0]) continue;
    for (let k = 1; k < needle.length; k++) if (haystack[i + k] !== needle[k]) continue outer;
    return true;
  }
  return false;
}

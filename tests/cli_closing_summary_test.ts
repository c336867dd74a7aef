/**
 * Every run ends with its closing summary: what was published where (images, complete or
 * partial), the failed items with their one-line reasons (ten, and a count), the report's path
 * and the wall time; after Ctrl-C, what did not finish and how to resume. An image missing
 * because it failed upstream is that image's failure, not a failure of verify-sizes' count.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { solidPng } from "./bad_inputs/generate.ts";
import { parse, pipelineCommand, removeTree } from "./fixtures/project.ts";
import { writeDemoVae } from "./fixtures/vae.ts";

/** A folder of `good` small PNGs and `empty` empty JPEGs, the demo VAE and a config. */
async function folderProject(good: number, empty: number, optimize: object = { max_steps: 3 }) {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-summary-" });
  const photos = join(dir, "photos");
  await Deno.mkdir(photos);
  for (let i = 0; i < good; i++) {
    await Deno.writeFile(join(photos, `p${i}.png`), await solidPng(24, 30 + 20 * i));
  }
  for (let i = 0; i < empty; i++) {
    await Deno.writeFile(join(photos, `bad${i}.jpg`), new Uint8Array());
  }
  const vae = await writeDemoVae(join(dir, "vae"));
  const out = join(dir, "out");
  const config = join(dir, "config.json");
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      dataset: { kind: "folder", path: photos },
      preprocess: { size: 16 },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: vae.decoder },
        scaling_factor: 1,
        providers: ["cpu"],
        threads: 1,
      },
      optimize,
      package: { out_dir: out, formats: ["npz"], samples: 1 },
    }),
  );
  const command = (args: string[]) =>
    pipelineCommand(args, { cache: join(dir, "cache"), configPath: config, cwd: dir });
  const run = async (args: string[]) => {
    const o = await command(args).output();
    return parse(o.code, o.stdout, o.stderr);
  };
  return { dir, out, run, command, cleanup: () => removeTree(dir) };
}

/** The lines after the run's own last line (`… run N <status> in …`). */
function summaryOf(stderr: string): string[] {
  const lines = stderr.trimEnd().split("\n");
  const end = lines.findLastIndex((l) => / run \d+ (ok|failed|interrupted) in /.test(l));
  assert(end >= 0, `no run-end line:\n${stderr}`);
  return lines.slice(end + 1);
}

Deno.test("a folder with an empty file: published where, with that image's failure and the report", async () => {
  const p = await folderProject(8, 1);
  try {
    const r = await p.run(["run"]);
    assertEquals(r.code, 1, r.stderr);
    // The empty file fails where it is read; verify-sizes' count is not failed by it.
    assertMatch(r.stderr, /verify-sizes ok: 8\/8 \(8 ran, 0 cached\)\n/);
    const lines = summaryOf(r.stderr);
    assertEquals(lines.slice(0, -1), [
      `published 8 images (1 split) to ${p.out}: a complete dataset without the 1 image that failed`,
      "1 item failed:",
      "  bad0 (fetch-images): bad0.jpg is empty (0 bytes)",
      `report: ${join(p.out, "report.html")}`,
    ]);
    assertMatch(
      lines.at(-1)!,
      /^failed in \d+\.\ds \(exit code 1: the other items are built and cached\)$/,
    );
    assert((await Deno.stat(join(p.out, "report.html"))).size > 0);
    // A second run publishes the same from the cache, and says so the same way.
    const again = await p.run(["run"]);
    assertEquals(summaryOf(again.stderr).slice(0, 3), lines.slice(0, 3));
  } finally {
    await p.cleanup();
  }
});

Deno.test("twelve failures: the first ten with their reasons, and a count of the rest", async () => {
  const p = await folderProject(2, 12);
  try {
    const r = await p.run(["run"]);
    assertEquals(r.code, 1, r.stderr);
    const lines = summaryOf(r.stderr);
    assertEquals(lines[1], "12 items failed:");
    const shown = lines.filter((l) =>
      /^ {2}bad\d+ \(fetch-images\): bad\d+\.jpg is empty \(0 bytes\)$/.test(l)
    );
    assertEquals(shown.length, 10);
    assert(
      lines.includes("  … and 2 more (all of them: deno task status --json, manifest.json)"),
      lines.join("\n"),
    );
  } finally {
    await p.cleanup();
  }
});

Deno.test("--limit: a partial dataset, said so; --json ends with the summary as an event", async () => {
  const p = await folderProject(4, 0);
  try {
    const r = await p.run(["run", "--limit", "2"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(summaryOf(r.stderr).slice(0, 2), [
      `published 2 images (1 split) to ${p.out}: a partial dataset (--limit 2)`,
      `report: ${join(p.out, "report.html")}`,
    ]);
    const json = await p.run(["run", "--limit", "2", "--json"]);
    const last = json.events.at(-1)!;
    assertEquals(last.event, "summary");
    assertEquals(last.published, {
      dir: p.out,
      images: 2,
      splits: 1,
      partial: "--limit 2",
      report: join(p.out, "report.html"),
    });
    assertEquals([last.status, last.exitCode, last.failed], ["ok", 0, 0]);
  } finally {
    await p.cleanup();
  }
});

Deno.test("a plan ends saying nothing ran, with no summary of a run", async () => {
  const p = await folderProject(2, 0);
  try {
    const r = await p.run(["run", "--dry-run"]);
    assertEquals(r.code, 0, r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    assertMatch(lines.at(-1)!, /^\d\d:\d\d:\d\d plan \d+ \(nothing run\)$/);
  } finally {
    await p.cleanup();
  }
});

/** Reads `reader` until its text so far matches every pattern; fails if it ends first. */
async function readUntil(reader: ReadableStreamDefaultReader<string>, patterns: RegExp[]) {
  let text = "";
  while (!patterns.every((p) => p.test(text))) {
    const { done, value } = await reader.read();
    assert(!done, `ended before ${patterns.join(", ")}:\n${text}`);
    text += value;
  }
  return text;
}

/** The rest of `reader`'s text, to its end. */
async function readRest(reader: ReadableStreamDefaultReader<string>): Promise<string> {
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text;
    text += value;
  }
}

/**
 * Starts `command`, sends SIGINT once what `stream` prints matches every pattern (encode has
 * ended and optimize has begun: it then has 100,000 steps per image to go), and returns that
 * stream's whole text and the exit code.
 */
async function interrupted(
  command: Deno.Command,
  stream: "stdout" | "stderr",
  patterns: RegExp[],
) {
  const child = command.spawn();
  const other = stream === "stdout" ? child.stderr : child.stdout;
  const rest = new Response(other).text();
  const reader = child[stream].pipeThrough(new TextDecoderStream()).getReader();
  const head = await readUntil(reader, patterns);
  child.kill("SIGINT");
  const text = head + await readRest(reader);
  return { text, other: await rest, code: (await child.status).code };
}

Deno.test("Ctrl-C during optimize: the summary says what did not finish and how to resume", async () => {
  const p = await folderProject(4, 0, { max_steps: 100_000, patience: 100_000 });
  try {
    const json = await interrupted(
      p.command(["run", "--json"]),
      "stdout",
      [
        /"event":"task-end","task":"encode","status":"ok"/,
        /"task":"optimize","message":"loss and gradient graph: running on/,
      ],
    );
    assertEquals(json.code, 130, json.other);
    const summary = json.text.trimEnd().split("\n").map((l) => JSON.parse(l)).at(-1);
    assertEquals(summary.event, "summary");
    assertEquals(summary.status, "interrupted");
    assertEquals(summary.unpublished, "package interrupted");
    // Optimize began and could not finish (100,000 steps per image); the images reached it.
    assertEquals(summary.finished, [
      "fetch-json",
      "fetch-images",
      "verify-sizes",
      "label-split",
      "preprocess",
      "encode",
    ]);
    assertEquals(
      summary.unfinished.map((u: { task: string; total: number }) => [u.task, u.total]),
      [["optimize", 4], ["package", 0]],
    );
    // The same run without --json says it in words.
    const words = await interrupted(
      p.command(["run"]),
      "stderr",
      [/encode ok: 4\/4/, /optimize: loss and gradient graph: running on/],
    );
    assertEquals(words.code, 130, words.text);
    const lines = summaryOf(words.text);
    assertEquals(lines[0], "nothing published: package interrupted");
    assertMatch(
      lines.at(-1)!,
      /^interrupted after \d+\.\ds; finished: fetch-json, fetch-images, verify-sizes, label-split, preprocess, encode; not finished: optimize \d\/4( \(\d failed\))?, package\. Run the same command again to resume: what finished is cached, and optimize goes on from its checkpoints$/,
    );
  } finally {
    await p.cleanup();
  }
});

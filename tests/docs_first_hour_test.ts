/**
 * The README's first hour holds: its recipes run as printed on a fresh clone (the demo, status
 * and explain after it, the loader example, the demo with the real VAE, a folder of one's own
 * photos under `~`), and the figures and claims beside them are the ones the code gives.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import sharp from "sharp";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { FreshClone, sharedModelRequirement } from "./fixtures/fresh_clone.ts";
import { PYTHON, PYTHON_ENV, pythonRequirement, runPython } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";
import { loadConfig } from "../lib/dag/config.ts";
import { IMAGE_EXTENSIONS } from "../lib/dataset/image_extensions.ts";
import { LatentNormalization } from "../lib/model/normalization.ts";
import { pipeline } from "../pipeline.ts";

const README = await Deno.readTextFile(new URL("../README.md", import.meta.url));

/** The README's section under `## heading`, up to the next `## `. */
function section(heading: string): string {
  const start = README.indexOf(`\n## ${heading}\n`);
  assert(start >= 0, `README has no section "${heading}"`);
  const end = README.indexOf("\n## ", start + 4);
  return README.slice(start, end < 0 ? undefined : end);
}

Deno.test("config/bsds500.json reads every image format into a folder of its own", async () => {
  const bsds = await loadConfig(pipeline, "config/bsds500.json");
  assertEquals(bsds.dataset.kind, "folder");
  if (bsds.dataset.kind !== "folder") return;
  // PNG and WebP files were skipped when only .jpg was listed.
  assertEquals(bsds.dataset.extensions, [...IMAGE_EXTENSIONS]);
  assertEquals(bsds.dataset.name, "BSDS500");
  const others = await Promise.all(
    ["config/ffhq.json", "config/demo.json"].map((f) => loadConfig(pipeline, f)),
  );
  const out = bsds.package.out_dir.replace(/\/+$/, "");
  assertEquals(out, "out/bsds500");
  for (const other of others) {
    const o = other.package.out_dir.replace(/\/+$/, "");
    assert(o !== out && !o.startsWith(`${out}/`), `${o} shares or lies in ${out}`);
  }
});

Deno.test("README: the demo with a real VAE says how long it takes and writes its own folder", async () => {
  const demo = section("Try it: the offline demo");
  const command = /```sh\ndeno task demo --set model\.encoder\.path=[^`]*```/.exec(demo)?.[0];
  assert(command, "no real-VAE demo command");
  const outDir = /--set package\.out_dir=(\S+)/.exec(command)?.[1];
  assert(outDir, `the real-VAE demo writes over the demo's folder: ${command}`);
  const demoConfig = await loadConfig(pipeline, "config/demo.json");
  assert(outDir !== demoConfig.package.out_dir, `${outDir} is the demo's own folder`);
  assertMatch(demo, /takes about \*\*\d+ minutes\*\*/);
  // The first-run warning, what it means and whether to approve.
  assertMatch(
    demo,
    /Ignored build scripts for packages:\nnpm:onnxruntime-node@[\d.]+\nnpm:protobufjs/,
  );
  assertMatch(demo, /Do not approve them for CPU work/);
  const pinned = JSON.parse(await Deno.readTextFile("deno.json")).imports["onnxruntime-node"];
  assert(demo.includes(`npm:onnxruntime-node@${pinned.split("@").at(-1)}`), "a stale version");
});

Deno.test("README: expected times for encode and 100 steps, per image and per 1,000, measured and estimated", async () => {
  const times = section("How long it takes");
  const rows = times.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| ---"));
  const cells = rows.map((r) => r.split("|").slice(1, -1).map((c) => c.trim()));
  const header = cells[0].map((c) => c.toLowerCase());
  for (const column of ["encode, per image", "encode, per 1,000", "100 steps, per image"]) {
    assert(header.some((h) => h.startsWith(column)), `no column "${column}" in ${header}`);
  }
  assert(header.some((h) => h.startsWith("100 steps, per 1,000")));
  const body = cells.slice(1).map((c) => `${c[0]} ${c[1]}`);
  for (const model of ["demo", "vae-small-bsds", "SD-v1"]) {
    for (const size of ["256²", "512²"]) {
      assert(
        body.some((b) => b.includes(model) && b.includes(size)),
        `no row for ${model} at ${size}`,
      );
    }
  }
  assert(body.some((b) => /GPU/.test(b) && /estimate/i.test(b)), "no GPU estimate row");
  assertMatch(times, /estimated? from the FLOP count/i);
  // The command that measures them exists.
  assertMatch(times, /deno task bench throughput/);
  const benches = await Deno.readTextFile("bench/main.ts");
  assertMatch(benches, /throughput: "\.\/throughput\.ts"/);
});

/**
 * The command lines of a section's ```sh blocks, as printed: continuations joined, comments and
 * blank lines dropped.
 */
function commandLines(heading: string): string[] {
  const blocks = [...section(heading).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks.flatMap((b) =>
    b.replace(/\\\n\s*/g, " ").split("\n").map((l) => l.replace(/\s+#.*$/, "").trim())
      .filter((l) => l && !l.startsWith("#"))
  );
}

/** The one command line of a section that matches `pattern`. */
function printed(heading: string, pattern: RegExp): string {
  const found = commandLines(heading).filter((l) => pattern.test(l));
  assertEquals(found.length, 1, `${heading}: commands matching ${pattern}: ${found.join(" | ")}`);
  return found[0];
}

/** The lines after a run's own last line: its closing summary. */
function closing(stderr: string): string[] {
  const lines = stderr.trimEnd().split("\n");
  const end = lines.findLastIndex((l) => / run \d+ (ok|failed|interrupted) in /.test(l));
  assert(end >= 0, `no run-end line:\n${stderr}`);
  return lines.slice(end + 1);
}

/** The normalization a dataset's latents.npz states (numpy, Debian's python3). */
function npzNormalization(path: string): { scaling_factor: number; latent_channels: number } {
  return JSON.parse(runPython(
    `import json, sys, numpy
z = numpy.load(sys.argv[1])
print(json.dumps({"scaling_factor": float(z["scaling_factor"]), "latent_channels": int(z["latent_channels"])}))`,
    [path],
  ));
}

const sha256 = async (path: string) =>
  createHash("sha256").update(await Deno.readFile(path)).digest("hex");

Deno.test("README: every recipe with the shared VAE stores its latents as its README says (unscaled)", async () => {
  const lines = [
    ...commandLines("Try it: the offline demo"),
    ...commandLines("Folders of images"),
  ].filter((l) => l.includes("vae-small-bsds"));
  assertEquals(lines.length, 2, lines.join("\n"));
  for (const line of lines) {
    const words = line.split(/\s+/);
    const sets = words.flatMap((w, i) => words[i - 1] === "--set" ? [w] : []);
    // The demo's commands run config/demo.json; the others name theirs.
    const file = words.includes("--config")
      ? words[words.indexOf("--config") + 1]
      : "config/demo.json";
    const config = await loadConfig(pipeline, file, sets);
    const stored = LatentNormalization.of(4, config.model).describe();
    assertEquals(stored.scaling_factor, 1, line);
    assertEquals(stored.shift_factor, 0, line);
  }
});

testIf([pythonRequirement("numpy, torch")], {
  name:
    "README as printed on a fresh clone: the demo, status and explain after it, the loader example",
  async fn() {
    const clone = await FreshClone.create();
    try {
      const demo = await clone.run(printed("Try it: the offline demo", /^deno task demo$/));
      assertEquals(demo.code, 0, demo.stderr);
      const out = join(clone.dir, "out", "demo");
      assertEquals(closing(demo.stderr), [
        `published 64 images (2 splits) to ${out}: a complete dataset`,
        `report: ${join(out, "report.html")}`,
        closing(demo.stderr).at(-1)!,
      ]);
      assertMatch(closing(demo.stderr).at(-1)!, /^done in \d+\.\ds$/);
      // After the build, status and explain as printed: no write grant needed, no error.
      for (const pattern of [/^deno task status /, /^deno task explain /]) {
        const r = await clone.run(printed("Try it: the offline demo", pattern));
        assertEquals(r.code, 0, r.stderr);
        assert(!/error|Requires/i.test(r.stderr), r.stderr);
      }
      const status = await clone.run(printed("Try it: the offline demo", /^deno task status /), [
        "--json",
      ]);
      const tasks = JSON.parse(status.stdout).tasks as { task: string; cached: number }[];
      // The config's spec is the one its mirror serves on its port; when another program had
      // the port, the demo served (and built) another, which the config does not name.
      const ownPort = !/port \d+ is taken/.test(demo.stderr);
      if (ownPort) assertEquals(tasks.find((t) => t.task === "optimize")?.cached, 64);
      // The loader example, on what the demo wrote.
      const example = /```python\n([\s\S]*?)```/.exec(section("Training-ready latents"))?.[1];
      assert(example, "no loader example");
      const loader = new Deno.Command(PYTHON, {
        args: ["-c", example],
        cwd: clone.dir,
        env: PYTHON_ENV,
        stderr: "piped",
      }).outputSync();
      assertEquals(loader.code, 0, new TextDecoder().decode(loader.stderr));
      const summary = /`python3\s+(examples\/torch_dataset\.py \S+)`/.exec(
        section("Training-ready latents"),
      )
        ?.[1];
      assert(summary, "no loader summary command");
      const printedSummary = new Deno.Command(PYTHON, {
        args: summary.split(" "),
        cwd: clone.dir,
        env: PYTHON_ENV,
      }).outputSync();
      const text = new TextDecoder().decode(printedSummary.stdout);
      assertEquals(printedSummary.code, 0, new TextDecoder().decode(printedSummary.stderr));
      assertMatch(text, /^64 images in 1 buckets/);
    } finally {
      await clone.cleanup();
    }
  },
});

testIf([sharedModelRequirement(), pythonRequirement("numpy")], {
  name: "README as printed on a fresh clone: the demo with the real VAE, --limit 8",
  async fn() {
    const clone = await FreshClone.create();
    try {
      const line = printed("Try it: the offline demo", /^deno task demo --set model\.encoder/);
      // Eight images, as the README says to try it; smaller and fewer steps than the demo's
      // (128×128, 60 steps: minutes through this decoder), which the recipe leaves to the config.
      const r = await clone.run(line, [
        "--limit",
        "8",
        "--set",
        "preprocess.size=64",
        "--set",
        "optimize.max_steps=10",
      ]);
      assertEquals(r.code, 0, r.stderr);
      const out = join(clone.dir, "out", "demo-vae-small");
      assertEquals(
        closing(r.stderr)[0],
        `published 8 images (2 splits) to ${out}: a partial dataset (--limit 8)`,
      );
      // The report says what built it: both models by sha256, the files, the --limit.
      const models = join(clone.root, "shared", "models", "vae-small-bsds");
      const html = await Deno.readTextFile(join(out, "report.html"));
      const encoder = await sha256(join(models, "vae_encoder.onnx"));
      const decoder = await sha256(join(models, "vae_decoder.onnx"));
      assertStringIncludes(
        html,
        `Made with encoder <code>${encoder.slice(0, 12)}</code> and decoder <code>${
          decoder.slice(0, 12)
        }</code> (sha256) · no preset · 4 latent channels, stored = z</p>`,
      );
      assertStringIncludes(html, "with <code>--limit 8</code>");
      assertStringIncludes(
        html,
        "model.encoder <code>../shared/models/vae-small-bsds/vae_encoder.onnx</code>",
      );
      const manifest = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
      assertEquals(manifest.models.encoder_sha256, encoder);
      assertEquals(manifest.limit, 8);
      // Every folder but the index (index/) is a split.
      const files = [...Deno.readDirSync(out)].filter((e) => e.isDirectory && e.name !== "index")
        .map((e) => e.name);
      for (const split of files) {
        assertEquals(npzNormalization(join(out, split, "latents.npz")), {
          scaling_factor: 1,
          latent_channels: 4,
        });
      }
    } finally {
      await clone.cleanup();
    }
  },
});

testIf([sharedModelRequirement(), pythonRequirement("numpy")], {
  name:
    "README as printed on a fresh clone: a folder of one's own photos under ~ with the shared VAE",
  async fn() {
    const clone = await FreshClone.create();
    try {
      const photos = join(clone.home, "photos");
      await Deno.mkdir(photos);
      for (let i = 0; i < 3; i++) {
        await sharp({
          create: { width: 72, height: 48, channels: 3, background: { r: 60 * i, g: 140, b: 90 } },
        }).jpeg().toFile(join(photos, `IMG_${i}.jpg`));
      }
      const line = printed("Folders of images", /vae-small-bsds/);
      // Small images and few steps: the recipe leaves both to the config.
      const r = await clone.run(line, [
        "--set",
        "preprocess.size=64",
        "--set",
        "optimize.max_steps=3",
      ]);
      assertEquals(r.code, 0, r.stderr);
      const out = join(clone.dir, "out", "photos");
      assertEquals(closing(r.stderr).slice(0, 2), [
        `published 3 images (1 split) to ${out}: a complete dataset`,
        `report: ${join(out, "report.html")}`,
      ]);
      const index = JSON.parse(await Deno.readTextFile(join(out, "index.json")));
      assertEquals(index.images.map((i: { id: string }) => i.id).sort(), [
        "IMG_0",
        "IMG_1",
        "IMG_2",
      ]);
      assertEquals(npzNormalization(join(out, "all", "latents.npz")), {
        scaling_factor: 1,
        latent_channels: 4,
      });
      // Nothing was looked for in a folder literally named "~".
      assertEquals(await Deno.stat(join(clone.dir, "~")).then(() => true, () => false), false);
    } finally {
      await clone.cleanup();
    }
  },
});

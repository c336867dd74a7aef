import { join } from "node:path";
import sharp, { type FormatEnum } from "sharp";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { writeDemoVae } from "./fixtures/vae.ts";

/** A folder of one's own photos, as a newcomer has it: mixed formats and a few oddities. */
async function photos(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const picture = (k: number, size = 80) =>
    sharp(
      new TextEncoder().encode(
        `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size * 3 / 4}">` +
          `<rect width="100%" height="100%" fill="hsl(${k * 40},60%,50%)"/>` +
          `<circle cx="${20 + 6 * k}" cy="30" r="14" fill="#fff"/></svg>`,
      ),
    );
  const formats: [string, keyof FormatEnum | "avif"][] = [
    ["a.jpg", "jpeg"],
    ["b.png", "png"],
    ["c.webp", "webp"],
    ["d.tif", "tiff"],
    ["e.avif", "avif"],
    ["f.gif", "gif"],
    ["photo.jpg", "jpeg"],
    ["photo.png", "png"],
  ];
  for (const [k, [name, format]] of formats.entries()) {
    await picture(k).flatten({ background: "#000" }).toFormat(format).toFile(join(dir, name));
  }
  await sharp({ create: { width: 10, height: 10, channels: 3, background: "#c84" } }).png()
    .toFile(join(dir, "tiny.png"));
  await Deno.copyFile(join(dir, "b.png"), join(dir, "dup.png"));
  await Deno.writeFile(join(dir, "empty.jpg"), new Uint8Array());
  await Deno.writeTextFile(join(dir, "notes.txt"), "holiday 2024");
  await Deno.symlink(join(dir, "moved-away.jpg"), join(dir, "dead.jpg"));
}

Deno.test("a folder of mixed photos: every format is built, oddities named, one bad file fails alone", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lf_photos_" });
  try {
    await photos(join(dir, "photos"));
    const vae = await writeDemoVae(join(dir, "vae"));
    const p = await PipelineProject.create({
      dataset: { kind: "folder", path: join(dir, "photos") },
      preprocess: { size: 64 },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: vae.decoder },
        scaling_factor: 1.0,
        providers: ["cpu"],
      },
      optimize: { max_steps: 3, batch_size: 4 },
      package: { samples: 1, formats: ["npz"] },
    });
    try {
      const r = await p.run(["run", "--json"]);
      assertEquals(r.code, 1, r.stderr);
      const failed = Object.fromEntries(
        r.events.filter((e) => e.event === "item" && e.status === "failed")
          .map((e) => [`${e.task} ${e.item}`, String(e.reason)]),
      );
      assertEquals(failed, {
        "fetch-images photo.jpg":
          'photo.jpg and photo.png both give the item id "photo" (an id is the path without ' +
          "its extension): rename one of them",
        "fetch-images photo.png":
          'photo.png and photo.jpg both give the item id "photo" (an id is the path without ' +
          "its extension): rename one of them",
        "fetch-images empty": "empty.jpg is empty (0 bytes)",
        "fetch-images dead":
          `dead.jpg is a broken link: its target ${dir}/photos/moved-away.jpg does not exist`,
      });
      const logs = r.events.filter((e) => e.event === "log").map((e) => `${e.task}: ${e.message}`);
      assert(
        logs.includes("fetch-json: skipped 1 file that is not an image by extension: notes.txt"),
        logs.join("\n"),
      );
      assert(logs.some((l) => l.startsWith("fetch-json: 4 files cannot be used and will fail")));
      assert(logs.includes("package: 1 image is upscaled more than 2×: tiny 10×10 6.4×"));
      assert(logs.includes("package: 1 group of byte-identical images: b = dup"));

      // Everything else is built: one split, "all", for files directly in the folder.
      const manifest = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
      assertEquals(manifest.counts, { all: 8 });
      assertEquals(Object.keys(manifest.images).sort(), [
        "a",
        "b",
        "c",
        "d",
        "dup",
        "e",
        "f",
        "tiny",
      ]);
      assertEquals(
        manifest.failures.map((f: { id: string; task: string }) => `${f.task} ${f.id}`).sort(),
        Object.keys(failed).sort(),
      );
      assertEquals(manifest.notes, {
        skipped: [{ path: "notes.txt", reason: "not an image by its extension (.txt)" }],
        upscaled: [{ id: "tiny", width: 10, height: 10, factor: 6.4 }],
        duplicates: [["b", "dup"]],
        excluded: [],
      });
      const manifestTxt = await Deno.readTextFile(join(p.out, "all", "manifest.txt"));
      assertEquals(manifestTxt.trim().split("\n"), [
        "a.jpg",
        "b.png",
        "c.webp",
        "d.tif",
        "dup.png",
        "e.avif",
        "f.gif",
        "tiny.png",
      ]);
      const report = await Deno.readTextFile(join(p.out, "report.html"));
      assertStringIncludes(report, "<h1>photos</h1>");
      for (const text of ["notes.txt", "b = dup", "10×10", "empty.jpg is empty (0 bytes)"]) {
        assertStringIncludes(report, text);
      }

      // Left out on request: the notes stay, the dataset files lose those images.
      const again = await p.run([
        "run",
        "--json",
        "--set",
        'package.exclude=["upscaled","duplicates"]',
      ]);
      assertEquals(again.code, 1, again.stderr);
      const fewer = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
      assertEquals(fewer.counts, { all: 6 });
      assertEquals(fewer.notes.excluded, [
        { id: "dup", reason: "byte-identical to b" },
        { id: "tiny", reason: "upscaled 6.4× from 10×10" },
      ]);
      const ran = Object.fromEntries(
        again.events.filter((e) => e.event === "task-end").map((e) => [
          e.task,
          (e.counts as { ran: number }).ran,
        ]),
      );
      assertEquals([ran.preprocess, ran.encode, ran.optimize, ran.package], [0, 0, 0, 1]);
    } finally {
      await p.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing dataset folder is a config error (exit 2) in a run and in a dry run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lf_missing_" });
  const p = await PipelineProject.create({
    dataset: { kind: "folder", path: join(dir, "no-such-folder") },
    model: { encoder: { path: "e.onnx" }, decoder: { path: "d.onnx" }, scaling_factor: 1 },
  });
  try {
    for (const args of [["run"], ["run", "--dry-run"], ["run", "--json", "optimize"]]) {
      const r = await p.run(args);
      assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assertMatch(
        r.stderr.trim(),
        new RegExp(
          `^error: config ${p.configPath}: dataset\\.path: the dataset folder ` +
            `${dir}/no-such-folder does not exist$`,
        ),
      );
    }
    // Stopped before any work: not even the cache was made.
    assertEquals(await Deno.stat(p.cache).then(() => true, () => false), false);
  } finally {
    await p.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

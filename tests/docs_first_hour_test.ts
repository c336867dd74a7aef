import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { loadConfig } from "../lib/dag/config.ts";
import { IMAGE_EXTENSIONS } from "../lib/dataset/image_extensions.ts";
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

import { join } from "node:path";
import sharp from "sharp";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { writeDemoVae } from "./fixtures/vae.ts";
import { GraphBuilder } from "../lib/onnx/graph_builder.ts";
import { readGraph, writeModel } from "../lib/onnx/model_io.ts";

/**
 * The demo decoder plus 0·mean(√(z + 0.99)): the same images, except that a latent with a
 * value below −0.99 (an all-black 8×8 block) makes its image's loss NaN.
 */
async function fragileDecoder(path: string, out: string): Promise<void> {
  const graph = await readGraph(path);
  const b = new GraphBuilder({ graph });
  const z = graph.inputs[0].name;
  const image = graph.outputs[0];
  const root = b.node("Sqrt", [b.node("Add", [z, b.scalar(0.99)])]);
  const mean = b.node("ReduceMean", [root], { axes: [1, 2, 3], keepdims: 1 });
  const poisoned = b.node("Add", [image.name, b.node("Mul", [mean, b.scalar(0)])]);
  graph.outputs = [];
  b.output(poisoned, image.dtype, image.dims);
  await writeModel(out, graph);
}

async function folderDataset(dir: string): Promise<void> {
  const train = join(dir, "train");
  await Deno.mkdir(train, { recursive: true });
  for (let i = 0; i < 4; i++) {
    await sharp({
      create: {
        width: 96,
        height: 64,
        channels: 3,
        background: { r: 60 + 40 * i, g: 140, b: 200 - 30 * i },
      },
    }).png().toFile(join(train, `good${i}.png`));
  }
  await sharp({ create: { width: 64, height: 64, channels: 3, background: "#000" } })
    .png().toFile(join(train, "black.png"));
  const whole = await sharp({
    create: { width: 80, height: 80, channels: 3, background: "#4a8" },
  }).jpeg().toBuffer();
  await Deno.writeFile(
    join(train, "truncated.jpg"),
    whole.subarray(0, Math.floor(whole.length * 0.6)),
  );
}

Deno.test("a corrupt image and a NaN image fail with their reasons; the dataset holds the others", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await folderDataset(join(dir, "data"));
    const vae = await writeDemoVae(join(dir, "vae"));
    await fragileDecoder(vae.decoder, join(dir, "vae", "fragile.onnx"));
    const p = await PipelineProject.create({
      dataset: { kind: "folder", path: join(dir, "data") },
      preprocess: { size: 64 },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: join(dir, "vae", "fragile.onnx") },
        scaling_factor: 1.0,
        providers: ["cuda", "cpu"],
      },
      optimize: { max_steps: 8, batch_size: 3 },
      package: { samples: 2 },
    });
    try {
      const r = await p.run(["run", "--json"]);
      assertEquals(r.code, 1, r.stderr);
      const failed = Object.fromEntries(
        r.events.filter((e) => e.event === "item" && e.status === "failed").map((e) => [
          `${e.task} ${e.item}`,
          String(e.reason),
        ]),
      );
      assertEquals(Object.keys(failed).sort(), [
        "optimize train/black",
        "verify-sizes train/truncated",
      ]);
      assertMatch(
        failed["verify-sizes train/truncated"],
        /^image train\/truncated \(train\/truncated\.jpg\): not a readable image: .*premature end of JPEG/,
      );
      assertMatch(failed["optimize train/black"], /loss is NaN at step 0/);
      // The provider fallback is logged, and the provider used is recorded with each result.
      const logs = r.events.filter((e) => e.event === "log").map((e) => String(e.message)).join(
        "\n",
      );
      assertMatch(logs, /cuda unavailable .*falling back to cpu/);

      const manifest = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
      assertEquals(
        manifest.failures.map((f: { id: string; task: string }) => `${f.task} ${f.id}`).sort(),
        ["optimize train/black", "verify-sizes train/truncated"],
      );
      const report = await Deno.readTextFile(join(p.out, "report.html"));
      assertStringIncludes(report, "train/truncated");
      assertStringIncludes(report, "loss is NaN at step 0");
      const metrics = (await Deno.readTextFile(join(p.out, "train", "metrics.csv"))).trim().split(
        "\n",
      );
      assertEquals(
        metrics.slice(1).map((l) => l.split(",")[0]),
        [0, 1, 2, 3].map((i) => `train/good${i}`),
      );
      assert(metrics.slice(1).every((l) => l.endsWith(",cpu")), "each result records its provider");
    } finally {
      await p.cleanup();
    }

    // Without cpu in the list, encode fails clearly: once, for the task, not once per image.
    const gpuOnly = await PipelineProject.create({
      dataset: { kind: "folder", path: join(dir, "data") },
      preprocess: { size: 64 },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: vae.decoder },
        scaling_factor: 1.0,
        providers: ["cuda"],
      },
    });
    try {
      const r = await gpuOnly.run(["run", "encode", "--json"]);
      assertEquals(r.code, 1);
      const itemFailures = r.events.filter((e) =>
        e.event === "item" && e.task === "encode" && e.status === "failed"
      );
      assertEquals(itemFailures.length, 0, JSON.stringify(itemFailures));
      const end = r.events.find((e) => e.event === "task-end" && e.task === "encode");
      assertEquals(end?.status, "failed");
      assertMatch(String(end?.reason), /model\.encoder .*tried cuda \(/);
    } finally {
      await gpuOnly.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

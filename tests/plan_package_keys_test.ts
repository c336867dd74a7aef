/**
 * What package keys on is what the dataset files state: the config they state holds no path
 * and no setting that only says how things ran (run.json says those, and where the dataset was
 * published), so moving `out_dir` republishes the same files without rebuilding them; and the
 * reconciliation of local copies they state is made from recorded outputs and the copies'
 * listing, so a file added to an adopted folder reruns package in the plan as in the run.
 */
import { join } from "node:path";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { writeLocalFolder } from "./fixtures/local_copy.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { mirroredConfig, type Ran, tasksPlanned, tasksRan } from "./fixtures/project.ts";
import { writeTinyVae } from "./fixtures/vae.ts";

/** Every file of a folder, by relative path. */
async function tree(dir: string, rel = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(join(dir, rel))) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) { for (const [p, b] of await tree(dir, path)) out.set(p, b); }
    else out.set(path, await Deno.readFile(join(dir, path)));
  }
  return out;
}

/** The `__metadata__` of a safetensors file. */
function safetensorsMetadata(bytes: Uint8Array): Record<string, string> {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))).__metadata__;
}

/** Tasks that executed something, with how many items. */
function ran(r: Ran): Record<string, number> {
  return Object.fromEntries([...tasksRan(r)].filter(([, n]) => n > 0));
}

Deno.test({
  name: "package: moving out_dir republishes from the cache; the files state only the keyed config",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const mirror = await startMirror({ count: 4, imageSize: 32, seed: 2 });
  const dir = await Deno.makeTempDir({ prefix: "latentforge-outdir-" });
  try {
    const vae = await writeTinyVae(join(dir, "vae"));
    const config = (outDir: string) =>
      mirroredConfig({
        preprocess: { size: 32 },
        model: { scaling_factor: 1, providers: ["cpu"], threads: 1 },
        optimize: { max_steps: 2, batch_size: 2, checkpoint_every: 1 },
        package: { formats: ["npz", "safetensors"], samples: 1, out_dir: outDir },
      }, { mirror, vae, labels: false, pin: ["spec"] });
    const p = await PipelineProject.create(config(join(dir, "first")));
    try {
      const first = await p.run(["run", "--json"]);
      assertEquals(first.code, 0, first.stderr);
      const before = await tree(join(dir, "first"));
      const manifest = JSON.parse(new TextDecoder().decode(before.get("manifest.json")));
      for (const [section, fields] of Object.entries(UNSTATED)) {
        for (const field of fields) {
          assert(
            !(field in (manifest.config[section] ?? {})),
            `manifest states ${section}.${field}`,
          );
        }
      }
      assertEquals(manifest.config.optimize.max_steps, 2);
      const file = [...before.keys()].find((f) => f.endsWith("/latents.safetensors"))!;
      const stated = JSON.parse(safetensorsMetadata(before.get(file)!).config);
      assertEquals(stated, manifest.config);
      const runJson = JSON.parse(new TextDecoder().decode(before.get("run.json")));
      assertEquals(runJson.settings.package.out_dir, join(dir, "first"));
      assertEquals(runJson.settings.model.providers, ["cpu"]);
      assertEquals(runJson.settings.optimize, { batch_size: 2, checkpoint_every: 1 });

      // Another out_dir: nothing to rebuild, the same files published there.
      await p.writeConfig(config(join(dir, "second")));
      const dry = await p.run(["run", "--dry-run", "--json"]);
      assertEquals(dry.code, 0, dry.stderr);
      assertEquals(tasksPlanned(dry), {});
      const moved = await p.run(["run", "--json"]);
      assertEquals(moved.code, 0, moved.stderr);
      assertEquals(ran(moved), {});
      const after = await tree(join(dir, "second"));
      assertEquals([...after.keys()].sort(), [...before.keys()].sort());
      // The same bytes (run.json states the run that built them, the marker where they are).
      for (const [path, bytes] of before) {
        if (path !== ".latentforge.json") assertEquals(after.get(path), bytes, path);
      }
    } finally {
      await p.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await mirror.close();
  }
});

/** Config fields the dataset files must not state: paths and how things ran. */
const UNSTATED: Record<string, string[]> = {
  package: ["out_dir"],
  model: ["encoder", "decoder", "providers", "threads"],
  optimize: ["batch_size", "checkpoint_every"],
  dataset: ["spec", "mirrors", "adopt"],
};

Deno.test({
  name: "package: a file added to an adopted folder reruns package, in the plan as in the run",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const mirror = await startMirror({ count: 6, imageSize: 32, imageKind: "noise", seed: 4 });
  const dir = await Deno.makeTempDir({ prefix: "latentforge-copies-" });
  try {
    const vae = await writeTinyVae(join(dir, "vae"));
    const copies = join(dir, "copies");
    await writeLocalFolder(mirror, copies, { seed: 4 });
    const p = await PipelineProject.create(mirroredConfig({
      dataset: { adopt: [copies] },
      preprocess: { size: 32 },
      model: { scaling_factor: 1, providers: ["cpu"], threads: 1 },
      optimize: { max_steps: 2 },
      package: { formats: ["npz"], samples: 0 },
    }, { mirror, vae, labels: false, pin: ["spec"] }));
    try {
      const first = await p.run(["run", "--json"]);
      assertEquals(first.code, 0, first.stderr);
      const extraBefore = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")))
        .reconciliation.extra as string[];

      await Deno.writeTextFile(join(copies, "notes.txt"), "a file that is no image of the spec");
      const dry = await p.run(["run", "--dry-run", "--json"]);
      assertEquals(dry.code, 0, dry.stderr);
      assertEquals(tasksPlanned(dry), { package: 1 });
      const plan = dry.events.find((e) => e.event === "plan" && e.task === "package")!;
      assertEquals(plan.reasons, ["what it reads from outside changed (its fingerprint)"]);
      const again = await p.run(["run", "--json"]);
      assertEquals(again.code, 0, again.stderr);
      assertEquals(ran(again), { package: 1 });
      const extra = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")))
        .reconciliation.extra as string[];
      assertEquals(extra, [...extraBefore, join(copies, "notes.txt")].sort());
      // And with nothing added since, nothing reruns.
      const dryAgain = await p.run(["run", "--dry-run", "--json"]);
      assertEquals(tasksPlanned(dryAgain), {});
    } finally {
      await p.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await mirror.close();
  }
});

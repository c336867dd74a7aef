/**
 * `optimize.batch_size` and `optimize.checkpoint_every` say how optimize runs, not what it
 * computes, so they are in no key: an image's optimized latent is bit for bit the same whether
 * it ran alone or in a batch of four (two caches, the same six images, the demo VAE and a small
 * convolutional one, both methods on CPU), and in one cache a change of either reruns nothing.
 */
import { join } from "node:path";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { mirroredConfig, tasksRan, type VaeFiles } from "./fixtures/project.ts";
import { writeDemoVae, writeTinyVae } from "./fixtures/vae.ts";
import { openRecords } from "../lib/store/records.ts";

/** The output digest of every optimized item of a cache. */
async function optimized(cache: string): Promise<Record<string, string>> {
  const records = await openRecords(cache);
  try {
    const out: Record<string, string> = {};
    for (const [id, rec] of await records.actions("optimize")) out[id] = rec.digest;
    return out;
  } finally {
    records.close();
  }
}

Deno.test({
  name: "optimize: latents are bit-identical at batch 1 and 4, so batch_size reruns nothing",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const mirror = await startMirror({ count: 6, imageSize: 32, seed: 9 });
  const dir = await Deno.makeTempDir({ prefix: "latentforge-batch-" });
  const projects: PipelineProject[] = [];
  try {
    const vaes: [string, VaeFiles][] = [
      ["demo", await writeDemoVae(join(dir, "demo"))],
      ["tiny", await writeTinyVae(join(dir, "tiny"), { seed: 4 })],
    ];
    for (const [name, vae] of vaes) {
      for (const method of ["gradient", "gradient_free"]) {
        const config = (batch_size: number, checkpoint_every: number) =>
          mirroredConfig({
            preprocess: { size: 32 },
            model: { scaling_factor: 1, providers: ["cpu"], threads: 1 },
            // No early stop: every image takes every step, in whatever batch it is.
            optimize: { method, max_steps: 6, tolerance: 0, batch_size, checkpoint_every },
            package: { formats: ["npz"], samples: 0 },
          }, { mirror, vae, labels: false });
        const one = await PipelineProject.create(config(1, 1));
        const four = await PipelineProject.create(config(4, 5));
        projects.push(one, four);
        for (const p of [one, four]) {
          const r = await p.run(["run", "optimize", "--json"]);
          assertEquals(r.code, 0, r.stderr);
          assertEquals(tasksRan(r).get("optimize"), 6);
        }
        const [a, b] = [await optimized(one.cache), await optimized(four.cache)];
        assertEquals(Object.keys(a).length, 6);
        assertEquals(a, b, `${name} VAE, ${method}: batch 1 and batch 4 differ`);
        // In one cache, neither field reruns anything.
        await four.writeConfig(config(2, 3));
        const again = await four.run(["run", "optimize", "--json"]);
        assertEquals(again.code, 0, again.stderr);
        assert([...tasksRan(again).values()].every((n) => n === 0), again.stdout);
      }
    }
  } finally {
    for (const p of projects) await p.cleanup();
    await Deno.remove(dir, { recursive: true });
    await mirror.close();
  }
});

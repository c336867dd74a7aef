import { join } from "node:path";
import { createHash } from "node:crypto";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { PipelineProject, python } from "./fixtures/pipeline_project.ts";
import { pythonRequirement } from "./fixtures/python.ts";
import { partIf } from "./fixtures/skip.ts";
import { writeTinyVae } from "./fixtures/vae.ts";
import { type ActionRecord, openRecords } from "../lib/store/records.ts";
import { mirroredConfig, tasksRan } from "./fixtures/project.ts";

const END_TO_END =
  "end to end on the mirror: the package files hold each split's images and the run's values";
const hasNumpy = partIf(pythonRequirement("numpy"), END_TO_END, "the numpy checks");
const hasH5py = partIf(pythonRequirement("numpy, h5py"), END_TO_END, "the h5py checks");

async function sha256File(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

/** Reads the current records of a task straight from the cache's KV. */
async function records(cache: string, task: string): Promise<Map<string, ActionRecord>> {
  const records = await openRecords(cache);
  try {
    return await records.actions(task);
  } finally {
    records.close();
  }
}

/** A safetensors reader written from the format's published description. */
function readSafetensors(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  const base = 8 + headerLength;
  const tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: [a, b] } = t as {
      dtype: string;
      shape: number[];
      data_offsets: [number, number];
    };
    tensors[name] = { dtype, shape, data: bytes.slice(base + a, base + b) };
  }
  return { metadata: header.__metadata__ as Record<string, string>, tensors };
}

Deno.test(END_TO_END, async () => {
  const mirror = await startMirror({ count: 12, imageSize: 64, seed: 3 });
  const vaeDir = await Deno.makeTempDir();
  let cleanup = () => Promise.resolve();
  try {
    const vae = await writeTinyVae(vaeDir);
    // Pinned, so that plans know the spec and labels without fetching them.
    const p = await PipelineProject.create(mirroredConfig({
      labels: { split_by: ["gender"] },
      preprocess: { size: 64 },
      model: { scaling_factor: 1.0, providers: ["cpu"], threads: 1 },
      optimize: { lr: 0.05, max_steps: 12, patience: 5, tolerance: 0, batch_size: 4 },
      package: { samples: 4 },
    }, { mirror, vae, pin: ["spec", "labels"] }));
    cleanup = () => p.cleanup();
    const first = await p.run(["run", "--json"]);
    assertEquals(first.code, 0, first.stderr);
    const ran = tasksRan(first);
    assertEquals(ran.get("optimize"), 12);
    assertEquals(ran.get("package"), 1);

    // The splits label-split recorded, read straight from the store.
    const split = (await records(p.cache, "label-split")).get("*")!;
    const splitsObject = JSON.parse(
      await Deno.readTextFile(
        join(p.cache, "objects", split.objects.splits.slice(0, 2), split.objects.splits),
      ),
    );
    const splits = splitsObject.splits as Record<string, string[]>;
    assertEquals(Object.keys(splits).sort(), ["female", "male"]);
    const optimized = await records(p.cache, "optimize");
    for (const [name, ids] of Object.entries(splits)) {
      for (
        const file of [
          "latents.npz",
          "latents.h5",
          "latents.safetensors",
          "manifest.txt",
          "metrics.csv",
        ]
      ) {
        assert((await Deno.stat(join(p.out, name, file))).size > 0, `${name}/${file} exists`);
      }
      const manifest = (await Deno.readTextFile(join(p.out, name, "manifest.txt"))).trim().split(
        "\n",
      );
      assertEquals(manifest, [...ids].sort().map((id) => splitsObject.paths[id]));
      const csv = (await Deno.readTextFile(join(p.out, name, "metrics.csv"))).trim().split("\n");
      assertEquals(csv.length, ids.length + 1);

      const st = readSafetensors(await Deno.readFile(join(p.out, name, "latents.safetensors")));
      assertEquals(JSON.parse(st.metadata.ids), [...ids].sort());
      assertEquals(st.tensors.latents.dtype, "F32");
      assertEquals(st.tensors.latents.shape, [ids.length, 4, 8, 8]);
      for (const [i, id] of [...ids].sort().entries()) {
        const rec = optimized.get(id)!;
        const npy = await Deno.readFile(
          join(p.cache, "objects", rec.objects.latent.slice(0, 2), rec.objects.latent),
        );
        const stored = npy.slice(npy.length - 4 * 256);
        assertEquals(st.tensors.latents.data.slice(i * 1024, (i + 1) * 1024), stored);
      }

      if (hasNumpy) {
        const npz = await python<Record<string, unknown>>(`
import numpy as np, json
d = np.load(${JSON.stringify(join(p.out, name, "latents.npz"))})
print(json.dumps({k: {"dtype": str(d[k].dtype), "shape": list(d[k].shape), "values": d[k].tolist()} for k in d.files}))`);
        const get = (k: string) => npz[k] as { dtype: string; shape: number[]; values: unknown };
        assertEquals(get("ids").values, [...ids].sort());
        assertEquals(get("ids").dtype.startsWith("<U"), true);
        assertEquals(get("latents").shape, [ids.length, 4, 8, 8]);
        assertEquals(get("initial_latents").shape, [ids.length, 4, 8, 8]);
        assertEquals(get("steps").dtype, "int32");
        assertEquals(get("passes").dtype, "int32");
        for (const [i, id] of [...ids].sort().entries()) {
          const meta = optimized.get(id)!.meta as Record<string, number>;
          for (
            const k of [
              "loss_initial",
              "loss_final",
              "psnr_initial",
              "psnr_final",
              "ssim_initial",
              "ssim_final",
            ]
          ) {
            assertEquals((get(k).values as number[])[i], Math.fround(meta[k]), `${k} of ${id}`);
          }
          assertEquals((get("steps").values as number[])[i], meta.steps);
          assertEquals((get("passes").values as number[])[i], meta.passes);
          assert(meta.loss_final <= meta.loss_initial, `loss of ${id} did not rise`);
          assert(meta.psnr_final >= meta.psnr_initial, `PSNR of ${id} did not fall`);
        }
        assert(
          (get("loss_final").values as number[]).some((v, i) =>
            v < (get("loss_initial").values as number[])[i]
          ),
          "optimization lowered some loss",
        );
      }
      if (hasH5py) {
        const h5 = await python<Record<string, unknown>>(`
import h5py, numpy as np, json
f = h5py.File(${JSON.stringify(join(p.out, name, "latents.h5"))}, "r")
d = np.load(${JSON.stringify(join(p.out, name, "latents.npz"))})
print(json.dumps({
  "same": all(np.array_equal(f[k].asstr()[()] if f[k].dtype.kind == "O" else f[k][()], d[k], equal_nan=d[k].dtype.kind == "f") for k in d.files if k not in f.attrs),
  "npz_scaling_factor": float(d["scaling_factor"]),
  "keys": sorted(f.keys()),
  "scaling_factor": float(f.attrs["scaling_factor"]),
  "decoder": f.attrs["decoder_sha256"] if isinstance(f.attrs["decoder_sha256"], str) else f.attrs["decoder_sha256"].decode(),
  "config": json.loads(f.attrs["config"])["optimize"]["lr"],
}))`);
        assertEquals(h5.same, true);
        assertEquals(h5.scaling_factor, 1);
        assertEquals(h5.npz_scaling_factor, 1);
        assertEquals(h5.decoder, await sha256File(vae.decoder));
        assertEquals(h5.config, 0.05);
      }
    }
    const manifest = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
    assertEquals(Object.keys(manifest.images).length, 12);
    assertEquals(manifest.models.decoder_sha256, await sha256File(vae.decoder));
    const someId = Object.keys(manifest.images)[0];
    assertEquals(manifest.images[someId].keys.optimize, optimized.get(someId)!.key);
    assertStringIncludes(await Deno.readTextFile(join(p.out, "report.html")), "<svg");

    // A new learning rate reruns optimize and package only, and explain names it.
    const why = await p.run(["explain", "optimize", "--set", "optimize.lr=0.02"]);
    assertStringIncludes(why.stdout, "config optimize.lr: 0.05 → 0.02");
    const lr = await p.run(["run", "--json", "--set", "optimize.lr=0.02"]);
    assertEquals(lr.code, 0, lr.stderr);
    assertEquals(Object.fromEntries(tasksRan(lr)), {
      "fetch-json": 0,
      "fetch-images": 0,
      "verify-sizes": 0,
      "label-split": 0,
      preprocess: 0,
      encode: 0,
      optimize: 12,
      package: 1,
    });

    // package.formats reruns package only.
    const formats = await p.run(["run", "--json", "--set", 'package.formats=["npz"]']);
    assertEquals(formats.code, 0, formats.stderr);
    assertEquals([...tasksRan(formats)].filter(([, n]) => n > 0), [["package", 1]]);
    assertEquals(await Deno.stat(join(p.out, "male", "latents.h5")).catch(() => null), null);

    // preprocess.size reruns preprocess and everything after it, nothing before.
    const size = await p.run(["run", "--json", "--set", "preprocess.size=32"]);
    assertEquals(size.code, 0, size.stderr);
    assertEquals(
      [...tasksRan(size)].filter(([, n]) => n > 0).map(([t]) => t),
      ["preprocess", "encode", "optimize", "package"],
    );

    // The gradient-free method runs end to end as well.
    const free = await p.run(["run", "--json", "--set", "optimize.method=gradient_free"]);
    assertEquals(free.code, 0, free.stderr);
    assertEquals(tasksRan(free).get("optimize"), 12);
    for (const rec of (await records(p.cache, "optimize")).values()) {
      const m = rec.meta as Record<string, number>;
      assert(m.loss_final <= m.loss_initial, "gradient-free never returns a worse latent");
    }
  } finally {
    await mirror.close();
    await cleanup();
    await Deno.remove(vaeDir, { recursive: true });
  }
});

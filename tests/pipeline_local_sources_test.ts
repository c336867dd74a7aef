/**
 * A local folder through the real pipeline, encode-only with flips as the ImageNet recipe has
 * it: images are read where they lie and no tensor is kept, so the cache holds per item about
 * its latents; a relisting reads only what changed; a file changed behind the cache's back
 * (same size and time) fails its items, named, when a result is computed from it; a folder
 * moved elsewhere reruns nothing past preprocess.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import sharp from "sharp";
import { assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { type Ran, tasksRan } from "./fixtures/project.ts";
import { syntheticImageSvg } from "./fixtures/synthetic_images.ts";
import { writeDemoVae } from "./fixtures/vae.ts";
import { openRecords } from "../lib/store/records.ts";
import { outputDigest } from "../lib/dag/action_key.ts";
import { encodeNpy } from "../lib/format/npy.ts";
import { preprocessImage } from "../lib/image/preprocess.ts";
import type { PreprocessRecipe } from "../lib/image/preprocessed_tensor.ts";

const IMAGES = 6;
/** Listed files get a time well in the past, so that their digests are trusted by it. */
const OLD = new Date("2021-06-01T00:00:00Z");

/** Six scenes in `train/` and `val/`; `val/img5.tif` is an uncompressed TIFF (its size is fixed). */
async function images(dir: string): Promise<string[]> {
  const paths: string[] = [];
  for (let k = 0; k < IMAGES; k++) {
    const split = k < 4 ? "train" : "val";
    await Deno.mkdir(join(dir, split), { recursive: true });
    const svg = sharp(new TextEncoder().encode(syntheticImageSvg(k, { width: 80, height: 64 })));
    const path = join(dir, split, k === 5 ? `img${k}.tif` : `img${k}.png`);
    if (k === 5) await Deno.writeFile(path, await flatTiff({ r: 30, g: 160, b: 220 }));
    else await svg.png().toFile(path);
    await Deno.utime(path, OLD, OLD);
    paths.push(path);
  }
  return paths;
}

/** An 80×64 uncompressed TIFF of one colour: its size does not depend on the colour. */
async function flatTiff(background: { r: number; g: number; b: number }): Promise<Uint8Array> {
  const create = { width: 80, height: 64, channels: 3 as const, background };
  return new Uint8Array(await sharp({ create }).tiff({ compression: "none" }).toBuffer());
}

function logs(r: Ran, task: string): string[] {
  return r.events.filter((e) => e.event === "log" && e.task === task).map((e) => String(e.message));
}

function ran(r: Ran): Record<string, number> {
  return Object.fromEntries(tasksRan(r));
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

Deno.test("encode-only from a local folder: no copies, no tensors, relisting reads what changed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-local-" });
  try {
    const paths = await images(join(dir, "data"));
    const vae = await writeDemoVae(join(dir, "vae"));
    const p = await PipelineProject.create({
      dataset: { kind: "folder", path: join(dir, "data") },
      preprocess: { size: 64, flip: true },
      model: { encoder: { path: vae.encoder }, decoder: { path: vae.decoder }, scaling_factor: 1 },
      optimize: { method: "none", max_steps: 2 },
      package: { samples: 1, formats: ["safetensors"], layout: "shards" },
    });
    try {
      const first = await p.run(["run", "--json"]);
      assertEquals(first.code, 0, first.stderr);
      assertEquals(logs(first, "fetch-json"), [
        "read 6 files, 0 unchanged since the last listing (same size, time and inode)",
      ]);

      // What the cache holds for the images: no copy of one, no tensor, 12 latents.
      const records = await openRecords(p.cache);
      const kept: Record<string, number> = {};
      let latentBytes = 0;
      try {
        for (const task of ["fetch-images", "verify-sizes", "preprocess", "encode"]) {
          for (const rec of (await records.actions(task)).values()) {
            for (const digest of Object.values(rec.objects)) {
              const size =
                (await Deno.stat(join(p.cache, "objects", digest.slice(0, 2), digest))).size;
              kept[task] = (kept[task] ?? 0) + size;
              if (task === "encode") latentBytes += size;
            }
          }
        }
        assertEquals(Object.keys(kept), ["encode"]);
        // 12 latents (6 images and their flips) of 4×8×8 float32 with the 128-byte header.
        assertEquals(latentBytes, 12 * (128 + 4 * 8 * 8 * 4));
        for (const path of paths) {
          const digest = sha256(await Deno.readFile(path));
          const copy = join(p.cache, "objects", digest.slice(0, 2), digest);
          assertEquals(await Deno.stat(copy).then(() => true, () => false), false, path);
        }

        // preprocess's identity is what the float tensor stored under earlier versions was: its
        // .npy bytes' sha256 in `objects.tensor`, beside the bucket and conditioning.
        const preprocessed = await records.actions("preprocess");
        assertEquals(preprocessed.size, 12);
        const rec = preprocessed.get("train/img1#flip")!;
        const { recipe, ...meta } = rec.meta as unknown as { recipe: PreprocessRecipe };
        const old = await preprocessImage(paths[1], { ...recipe.options, preview: false });
        const npy = encodeNpy({ dtype: "<f4", shape: old.shape, data: old.tensor });
        assertEquals(recipe.tensor, sha256(npy));
        assertEquals(rec.digest, outputDigest({ objects: { tensor: sha256(npy) }, meta }));
      } finally {
        records.close();
      }

      // Nothing changed: nothing is listed again.
      const second = await p.run(["run", "--json"]);
      assertEquals(second.code, 0, second.stderr);
      assertEquals(ran(second)["fetch-json"], 0);

      // A touched file is read again, alone; its content is the same, so nothing else reruns.
      await Deno.utime(
        paths[2],
        new Date("2022-01-01T00:00:00Z"),
        new Date("2022-01-01T00:00:00Z"),
      );
      const touched = await p.run(["run", "--json"]);
      assertEquals(touched.code, 0, touched.stderr);
      assertEquals(logs(touched, "fetch-json"), [
        "read 1 file, 5 unchanged since the last listing (same size, time and inode)",
      ]);
      assertEquals(ran(touched), {
        "fetch-json": 1,
        "fetch-images": 0,
        "verify-sizes": 0,
        "label-split": 0,
        preprocess: 0,
        encode: 0,
        optimize: 0,
        package: 0,
      });

      // Changed behind the cache's back: other pixels of the same size, the time put back.
      const victim = paths[5];
      const before = await Deno.readFile(victim);
      const other = await flatTiff({ r: 200, g: 30, b: 90 });
      assertEquals(other.length, before.length);
      await Deno.writeFile(victim, new Uint8Array(other));
      await Deno.utime(victim, OLD, OLD);
      const gradient = ["--set", "optimize.method=gradient"];
      const caught = await p.run(["run", "--json", ...gradient]);
      assertEquals(caught.code, 1, caught.stderr);
      const failed = caught.events.filter((e) => e.event === "item" && e.status === "failed");
      assertEquals(failed.map((e) => `${e.task} ${e.item}`).sort(), [
        "optimize val/img5",
        "optimize val/img5#flip",
      ]);
      const newMd5 = createHash("md5").update(other).digest("hex");
      const oldMd5 = createHash("md5").update(before).digest("hex");
      assertStringIncludes(
        String(failed[0].reason),
        `${victim} changed since it was listed: expected ${before.length} bytes with MD5 ` +
          `${oldMd5}, found ${other.length} bytes with MD5 ${newMd5}`,
      );
      assertEquals(ran(caught).optimize, 10);

      // Touched, it is listed anew and its items are built from its new bytes.
      await Deno.utime(victim, new Date(), new Date());
      const relisted = await p.run(["run", "--json", ...gradient]);
      assertEquals(relisted.code, 0, relisted.stderr);
      const counts = ran(relisted);
      assertEquals(
        [counts["fetch-images"], counts["verify-sizes"], counts.preprocess, counts.encode],
        [1, 1, 2, 2],
      );
      assertEquals(counts.optimize, 2);

      // Moved elsewhere: located anew, computed again up to preprocess, and nothing after it.
      await Deno.rename(join(dir, "data"), join(dir, "moved"));
      const moved = await p.run([
        "run",
        "--json",
        ...gradient,
        "--set",
        `dataset.path=${join(dir, "moved")}`,
      ]);
      assertEquals(moved.code, 0, moved.stderr);
      const after = ran(moved);
      assertEquals(
        [
          after["fetch-images"],
          after["verify-sizes"],
          after.preprocess,
          after.encode,
          after.optimize,
        ],
        [6, 6, 12, 0, 0],
      );
    } finally {
      await p.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

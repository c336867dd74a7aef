/**
 * WebDataset tar shards and Parquet tables through the real pipeline, read where they lie:
 * captions and metadata ride to the index, manifest.json and the PyTorch loader; a damaged
 * member fails its image, a bad tar header the rest of its shard (named by its byte offset), an
 * undecodable Parquet page its row group's rows; `--limit` takes the first items listed.
 */
import { join } from "node:path";
import sharp from "sharp";
import { parquetMetadata } from "hyparquet";
import { parquetWriteBuffer } from "hyparquet-writer";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { PipelineProject, python } from "./fixtures/pipeline_project.ts";
import { pythonRequirement, runPython } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";
import { syntheticImageSvg } from "./fixtures/synthetic_images.ts";
import { writeDemoVae } from "./fixtures/vae.ts";

const LOADER = join(import.meta.dirname!, "..", "examples");

async function jpeg(k: number): Promise<Uint8Array> {
  const svg = new TextEncoder().encode(syntheticImageSvg(k, { width: 80, height: 64 }));
  return new Uint8Array(await sharp(svg).jpeg().toBuffer());
}

/**
 * Two shards as img2dataset writes them, with Python's tarfile: shard 0 holds 000000–000002
 * (000002's JPEG is damaged), shard 1 holds 000003–000005 with 000005's header damaged.
 * Returns the byte offset of that header.
 */
async function shards(dir: string): Promise<number> {
  await Deno.mkdir(join(dir, "src"), { recursive: true });
  for (let k = 0; k < 6; k++) {
    const key = `00000${k}`;
    const bytes = k === 2 ? new TextEncoder().encode("not a jpeg at all") : await jpeg(k);
    await Deno.writeFile(join(dir, "src", `${key}.jpg`), bytes);
    await Deno.writeTextFile(join(dir, "src", `${key}.txt`), `caption ${k}`);
    await Deno.writeTextFile(
      join(dir, "src", `${key}.json`),
      JSON.stringify({ key, url: `http://img.example/${k}.jpg`, width: 80, height: 64 }),
    );
  }
  const out = runPython(
    `
import io, sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
offsets = {}
for shard, keys in (("00000.tar", range(0, 3)), ("00001.tar", range(3, 6))):
    with tarfile.open(f"{dst}/{shard}", "w", format=tarfile.USTAR_FORMAT) as t:
        for k in keys:
            for ext in ("jpg", "txt", "json"):
                name = f"00000{k}.{ext}"
                offsets[name] = t.offset
                t.add(f"{src}/{name}", arcname=name)
bad = offsets["000005.jpg"]
with open(f"{dst}/00001.tar", "r+b") as f:
    f.seek(bad + 148)
    f.write(b"0000001\\0")
print(bad)
`,
    [join(dir, "src"), dir],
  );
  return Number(out.trim());
}

/** Two tables: Image structs with ids (zstd), and bare bytes (gzip) whose 2nd row group is damaged. */
async function tables(dir: string): Promise<void> {
  const compressors = {
    ZSTD: (b: Uint8Array) => new Uint8Array(zstdCompressSync(b)),
    GZIP: (b: Uint8Array) => new Uint8Array(gzipSync(b)),
  };
  const images = await Promise.all([10, 11, 12, 13].map(jpeg));
  const first = parquetWriteBuffer({
    codec: "ZSTD",
    compressors,
    schema: [
      { name: "root", num_children: 4 },
      { name: "image", repetition_type: "OPTIONAL", num_children: 2 },
      { name: "bytes", type: "BYTE_ARRAY", repetition_type: "OPTIONAL" },
      { name: "path", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
      { name: "uid", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
      { name: "text", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
      { name: "aesthetic", type: "DOUBLE", repetition_type: "OPTIONAL" },
    ],
    columnData: [
      { name: "image", data: images.slice(0, 2).map((bytes, k) => ({ bytes, path: `${k}.jpg` })) },
      { name: "uid", data: ["u-a", "u-b"] },
      { name: "text", data: ["a fox", "a hen"] },
      { name: "aesthetic", data: [5.5, 6.25] },
    ],
  });
  await Deno.writeFile(join(dir, "part-0.parquet"), new Uint8Array(first));
  const second = new Uint8Array(parquetWriteBuffer({
    codec: "GZIP",
    compressors,
    rowGroupSize: 1,
    columnData: [
      { name: "image", data: images.slice(2), type: "BYTE_ARRAY" },
      { name: "uid", data: ["u-c", "u-d"], type: "STRING" },
      { name: "text", data: ["a cat", "a dog"], type: "STRING" },
    ],
  }));
  // The page header of the second row group's image column, overwritten.
  const chunk = parquetMetadata(second.buffer).row_groups[1].columns[0].meta_data!;
  second.fill(0xff, Number(chunk.data_page_offset), Number(chunk.data_page_offset) + 24);
  await Deno.writeFile(join(dir, "part-1.parquet"), second);
}

function failures(r: { events: Record<string, unknown>[] }): Record<string, string> {
  return Object.fromEntries(
    r.events.filter((e) => e.event === "item" && e.status === "failed")
      .map((e) => [`${e.task} ${e.item}`, String(e.reason)]),
  );
}

const LOADER_SCRIPT = (root: string) => `
import json, sys
sys.path.insert(0, ${JSON.stringify(LOADER)})
from torch_dataset import LatentDataset, BucketBatchSampler, collate
import numpy as np, torch
ds = LatentDataset(${JSON.stringify(root)})
items = {ds[i]["id"]: {"caption": ds[i]["caption"], "meta": ds[i]["meta"]} for i in range(len(ds))}
loader = torch.utils.data.DataLoader(ds, batch_sampler=BucketBatchSampler(ds, 8, seed=0), collate_fn=collate)
batch = next(iter(loader))
z = np.load(${JSON.stringify(root)} + "/all/latents.npz")
print(json.dumps({"items": items, "captions": sorted(batch["caption"]), "ids": z["ids"].tolist(),
                  "shape": list(z["latents"].shape)}))
`;

testIf(pythonRequirement("numpy, torch"), {
  name: "tar shards with captions: a damaged member and a bad header fail by name, the rest builds",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-wds-" });
    try {
      const bad = await shards(dir);
      const vae = await writeDemoVae(join(dir, "vae"));
      const p = await PipelineProject.create({
        dataset: { kind: "webdataset", shards: [join(dir, "0000[0-1].tar")] },
        preprocess: { size: 64 },
        model: { encoder: { path: vae.encoder }, latent_channels: 4, scaling_factor: 1 },
        optimize: { method: "none" },
        package: { samples: 0, formats: ["npz"] },
      });
      try {
        const r = await p.run(["run", "--json"]);
        assertEquals(r.code, 1, r.stderr);
        const failed = failures(r);
        assertEquals(Object.keys(failed).sort(), [
          `fetch-images 00001.tar@${bad}`,
          "verify-sizes 000002",
        ]);
        assertMatch(
          failed[`fetch-images 00001.tar@${bad}`],
          new RegExp(
            `^${dir}/00001\\.tar: the tar header at byte ${bad} cannot be read \\(its checksum ` +
              `is 1, the header's bytes sum to \\d+\\); the rest of the shard is not read$`,
          ),
        );
        assertStringIncludes(failed["verify-sizes 000002"], "image 000002 (00000.tar/000002.jpg)");

        const manifest = JSON.parse(await Deno.readTextFile(join(p.out, "manifest.json")));
        assertEquals(manifest.counts, { all: 4 });
        assertEquals(manifest.images["000004"].caption, "caption 4");
        assertEquals(manifest.images["000004"].meta.url, "http://img.example/4.jpg");
        const got = await python<{
          items: Record<string, { caption: string; meta: { key: string } }>;
          captions: string[];
          ids: string[];
          shape: number[];
        }>(LOADER_SCRIPT(p.out));
        assertEquals(got.ids, ["000000", "000001", "000003", "000004"]);
        assertEquals(got.shape, [4, 4, 8, 8]);
        assertEquals(got.items["000003"], {
          caption: "caption 3",
          meta: { key: "000003", url: "http://img.example/3.jpg", width: 80, height: 64 },
        } as unknown as { caption: string; meta: { key: string } });
        assertEquals(got.captions, ["caption 0", "caption 1", "caption 3", "caption 4"]);
      } finally {
        await p.cleanup();
      }
      // --limit 2 on a new cache: the first two images listed (shard 1's before shard 0's).
      const q = await PipelineProject.create({
        ...p.config,
        dataset: { kind: "webdataset", shards: [join(dir, "00001.tar"), join(dir, "00000.tar")] },
      });
      try {
        const limited = await q.run(["run", "--json", "--limit", "2"]);
        assertEquals(limited.code, 0, limited.stderr);
        const few = JSON.parse(await Deno.readTextFile(join(q.out, "manifest.json")));
        assertEquals(Object.keys(few.images).sort(), ["000003", "000004"]);
        assertEquals(few.limit, 2);
      } finally {
        await q.cleanup();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

testIf(pythonRequirement("numpy, torch"), {
  name:
    "Parquet tables: Image structs and bare bytes, zstd and gzip; a damaged row group fails its rows",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "latentforge-parquet-" });
    try {
      await tables(dir);
      const vae = await writeDemoVae(join(dir, "vae"));
      const p = await PipelineProject.create({
        dataset: {
          kind: "parquet",
          files: [join(dir, "part-*.parquet")],
          id_column: "uid",
          caption_column: "text",
        },
        preprocess: { size: 64, flip: true },
        model: { encoder: { path: vae.encoder }, latent_channels: 4, scaling_factor: 1 },
        optimize: { method: "none" },
        package: { samples: 0, formats: ["npz"] },
      });
      try {
        const r = await p.run(["run", "--json"]);
        assertEquals(r.code, 1, r.stderr);
        const failed = failures(r);
        assertEquals(Object.keys(failed), ["fetch-images part-1/1"]);
        assert(
          failed["fetch-images part-1/1"].startsWith(
            `${dir}/part-1.parquet: row 1: row group 1 (rows 1–1) cannot be decoded: `,
          ),
          failed["fetch-images part-1/1"],
        );
        const got = await python<{
          items: Record<string, { caption: string; meta: Record<string, unknown> }>;
          ids: string[];
          shape: number[];
        }>(LOADER_SCRIPT(p.out));
        // Ids from the id column; a row that cannot be read is named <file stem>/<row>.
        assertEquals(got.ids, ["u-a", "u-b", "u-c"]);
        assertEquals(got.shape, [3, 4, 8, 8]);
        assertEquals(got.items["u-b"], { caption: "a hen", meta: { aesthetic: 6.25 } });
        assertEquals(got.items["u-c"], { caption: "a cat", meta: {} });
      } finally {
        await p.cleanup();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * The columnar index (`index/`): numpy reads every array as the rows were fed (ids, places,
 * conditioning, labels with their missing values, captions and metadata back-filled, the files
 * table); the same rows give the same bytes; `index.json` stops at its limit; rows that contradict
 * each other are refused by name.
 */
import { join } from "node:path";
import { assert, assertEquals, assertThrows } from "./fixtures/assert.ts";
import { pythonRequirement, runPython } from "./fixtures/python.ts";
import { testIf } from "./fixtures/skip.ts";
import { type ImagePlace, tensorNames } from "../lib/package/dataset_index.ts";
import { IndexWriter, type IndexWriterOptions } from "../lib/package/index_writer.ts";
import type { PackageRow } from "../lib/package/rows.ts";

const NUMPY = pythonRequirement("numpy");

/** Seven images over two splits and two buckets; labels of every kind, some missing. */
function rows(): { row: PackageRow; place: ImagePlace }[] {
  const out: { row: PackageRow; place: ImagePlace }[] = [];
  const specs = [
    ["train", "32x32", "a/1"],
    ["train", "32x32", "a/2"],
    ["train", "32x32", "a/3"],
    ["train", "64x32", "b/1"],
    ["val", "32x32", "c/1"],
    ["val", "64x32", "é/2"],
    ["val", "64x32", "c/3"],
  ];
  const plain = tensorNames((n) => n, true);
  for (const [i, [split, bucket, id]] of specs.entries()) {
    const shard = `${split}/shards/${bucket}-00000.safetensors`;
    const first = specs.findIndex(([s, b]) => s === split && b === bucket);
    const conditioning = {
      original_size: [100 + i, 200 + i],
      crop_coords_top_left: [i, 2 * i],
      crop_box: [i, 2 * i, 100 + i, 200 + i],
      target_size: [32, bucket === "32x32" ? 32 : 64],
    };
    out.push({
      row: {
        id,
        split,
        bucket,
        path: `${id}.png`,
        image: { conditioning },
        flipped: { conditioning: { ...conditioning, crop_coords_top_left: [i, 50 - i] } },
        labels: {
          category: i === 2 ? null : split,
          class: i === 3 ? null : i % 3,
          score: i === 1 ? null : i / 4,
        },
        ...(i >= 2 && i !== 4 ? { caption: `caption ${i} ✓` } : {}),
        ...(i === 5 ? { meta: { width: 64, tags: ["x"] } } : {}),
      } as unknown as PackageRow,
      place: { file: shard, row: i - first, tensors: plain },
    });
  }
  return out;
}

const OPTIONS: IndexWriterOptions = {
  layout: "shards",
  flip: true,
  labelFields: { category: "text", class: "integer", score: "number" },
  classToIdx: { cat: 0, dog: 1, eel: 2 },
};

const FILES = [
  "train/shards/32x32-00000",
  "train/shards/64x32-00000",
  "val/shards/32x32-00000",
  "val/shards/64x32-00000",
];
const FACTS = Object.fromEntries(
  FILES.map((f, k) => [`${f}.safetensors`, {
    sha256: String(k).repeat(64),
    offsets: k === 1 ? { latents: 4096, latents_flipped: 8192 } : {},
  }]),
);
const SHAPES = { "32x32": [4, 4, 4], "64x32": [4, 4, 8] };

function written(options: IndexWriterOptions = OPTIONS) {
  const writer = new IndexWriter(options);
  for (const { row, place } of rows()) writer.add(row, place);
  return writer.finish({ files: FACTS, latentShapes: SHAPES });
}

/** Prints, as JSON, every array of the index folder given, decoded by numpy. */
const READ_INDEX = `
import json, os, sys
import numpy as np
folder = sys.argv[1]
header = json.load(open(os.path.join(folder, "header.json")))
a = {n: np.load(os.path.join(folder, n + ".npy"), mmap_mode="r") for n in header["arrays"]}
assert all(a[n].dtype.str.replace("|", "<") == s["dtype"].replace("|", "<") and list(a[n].shape) == s["shape"] for n, s in header["arrays"].items())
text = lambda name, i: bytes(a[name + ".utf8"][a[name + ".offsets"][i]:a[name + ".offsets"][i + 1]]).decode()
values = lambda f: [text("label_" + f + ".values", k) for k in range(a["label_" + f + ".values.offsets"].shape[0] - 1)]
n = header["images"]
print(json.dumps({
  "header": {k: header[k] for k in ("images", "files", "splits", "buckets", "label_fields", "class_to_idx", "flip")},
  "ids": [text("id", i) for i in range(n)],
  "file": a["file"].tolist(), "row": a["row"].tolist(), "bucket": a["bucket"].tolist(),
  "crop_box": a["crop_box"].tolist(), "flipped": a["crop_coords_top_left_flipped"].tolist(),
  "category": [None if c < 0 else values("category")[c] for c in a["label_category"].tolist()],
  "class": a["label_class"].tolist(), "class_dtype": a["label_class"].dtype.str,
  "score": [None if v != v else v for v in a["label_score"].tolist()],
  "caption": [text("caption", i) for i in range(n)],
  "meta": [text("meta", i) for i in range(n)],
  "paths": [text("files.path", k) for k in range(header["files"])],
  "sha256": [bytes(s).hex() for s in a["files.sha256"]],
  "offsets": a["files.offsets"].tolist(), "rows": a["files.rows"].tolist(),
  "file_split": a["files.split"].tolist(), "file_bucket": a["files.bucket"].tolist(),
}))
`;

testIf(NUMPY, {
  name: "numpy reads every array of index/ as the rows were fed",
  async fn() {
    const { files, json } = written();
    const dir = await Deno.makeTempDir({ prefix: "latentforge-index-" });
    try {
      for (const [name, bytes] of Object.entries(files)) {
        await Deno.mkdir(join(dir, name, ".."), { recursive: true });
        await Deno.writeFile(join(dir, name), bytes);
      }
      const got = JSON.parse(runPython(READ_INDEX, [join(dir, "index")]));
      const fed = rows();
      assertEquals(got.header.images, 7);
      assertEquals(got.header.files, 4);
      assertEquals(got.header.splits, [
        { name: "train", start: 0, images: 4 },
        { name: "val", start: 4, images: 3 },
      ]);
      assertEquals(
        got.header.buckets.map((b: { name: string; images: number }) => [b.name, b.images]),
        [
          ["32x32", 4],
          ["64x32", 3],
        ],
      );
      assertEquals(got.header.buckets[1].latent_shape, [4, 4, 8]);
      assertEquals(got.header.class_to_idx, OPTIONS.classToIdx);
      assertEquals(got.ids, fed.map((f) => f.row.id));
      assertEquals(got.file, [0, 0, 0, 1, 2, 3, 3]);
      assertEquals(got.row, fed.map((f) => f.place.row));
      assertEquals(got.bucket, [0, 0, 0, 1, 0, 1, 1]);
      assertEquals(got.crop_box, fed.map((f) => f.row.image.conditioning.crop_box));
      assertEquals(got.flipped, fed.map((f) => f.row.flipped!.conditioning.crop_coords_top_left));
      assertEquals(got.category, fed.map((f) => f.row.labels.category));
      assertEquals(got.class, [0, 1, 2, -1, 1, 2, 0]);
      assertEquals(got.class_dtype, "<i8");
      assertEquals(got.score, fed.map((f) => f.row.labels.score));
      // Captions start at the third image: the two before it are back-filled with "".
      assertEquals(got.caption, fed.map((f) => f.row.caption ?? ""));
      assertEquals(got.meta.map((m: string) => m && JSON.parse(m)), ["", "", "", "", "", {
        width: 64,
        tags: ["x"],
      }, ""]);
      assertEquals(got.paths, FILES.map((f) => `${f}.safetensors`));
      assertEquals(got.sha256, ["0", "1", "2", "3"].map((c) => c.repeat(64)));
      assertEquals(got.offsets[1], [4096, -1, 8192, -1]);
      assertEquals(got.offsets[0], [-1, -1, -1, -1]);
      assertEquals([got.rows, got.file_split, got.file_bucket], [[3, 1, 1, 2], [0, 0, 1, 1], [
        0,
        1,
        0,
        1,
      ]]);
      // index.json from the same feed: the same images, in the same order.
      assertEquals(
        json!.images.map((i) => [i.id, i.file, i.row]),
        fed.map((f) => [
          f.row.id,
          f.place.file,
          f.place.row,
        ]),
      );
      assertEquals(json!.files.map((f) => f.rows), [3, 1, 1, 2]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("the same rows give the same bytes; index.json stops at its limit", () => {
  const a = written();
  const b = written();
  assertEquals(Object.keys(a.files), Object.keys(b.files));
  for (const name of Object.keys(a.files)) assertEquals(a.files[name], b.files[name], name);
  assert(a.files["index/caption.offsets.npy"] && !a.files["index/label_score.values.utf8.npy"]);
  // Seven images: with a limit of 7 index.json is made, with 6 it is not, and index/ is the same.
  assertEquals(written({ ...OPTIONS, jsonMaxImages: 7 }).json?.images.length, 7);
  const over = written({ ...OPTIONS, jsonMaxImages: 6 });
  assertEquals(over.json, null);
  for (const name of Object.keys(a.files)) assertEquals(over.files[name], a.files[name], name);
});

Deno.test("rows that contradict each other are refused, naming the image", () => {
  const fed = rows();
  const feed = (options: IndexWriterOptions, change: (f: typeof fed) => void) => () => {
    const copy = rows();
    change(copy);
    const writer = new IndexWriter(options);
    for (const { row, place } of copy) writer.add(row, place);
    writer.finish({ files: FACTS, latentShapes: SHAPES });
  };
  assertThrows(
    feed(OPTIONS, (f) => f.push({ ...f[0], row: { ...f[0].row, id: "d/1" } })),
    "image d/1: split train comes again after split val",
  );
  assertThrows(
    feed(OPTIONS, (f) => f.push({ ...f[4], row: { ...f[4].row, id: "c/9" } })),
    "image c/9: file val/shards/32x32-00000.safetensors comes again after other files",
  );
  assertThrows(
    feed(OPTIONS, (f) => (f[1].place = { ...f[1].place, tensors: { latents: "latents_32x32" } })),
    "image a/2: bucket 32x32 has tensors",
  );
  assertThrows(
    feed(OPTIONS, (f) => (f[2].row = { ...f[2].row, labels: { ...f[2].row.labels, class: 1.5 } })),
    "image a/3: label class: expected an integer or none, found 1.5",
  );
  assertThrows(
    feed(OPTIONS, (f) => (f[3].row = { ...f[3].row, flipped: null })),
    "image b/1: expected a flipped latent, found none",
  );
  assertThrows(
    () => new IndexWriter({ ...OPTIONS, labelFields: { "../x": "text" } }),
    `label field "../x": expected letters`,
  );
  const writer = new IndexWriter(OPTIONS);
  for (const { row, place } of fed) writer.add(row, place);
  const { "val/shards/64x32-00000.safetensors": _, ...missing } = FACTS;
  assertThrows(
    () => writer.finish({ files: missing, latentShapes: SHAPES }),
    "file val/shards/64x32-00000.safetensors: expected its sha256 (64 hex digits), found null",
  );
});

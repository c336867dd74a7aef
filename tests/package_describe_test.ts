import { assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { describeImages } from "../lib/package/describe_images.ts";
import { datasetRows } from "../lib/package/dataset_rows.ts";
import { SplitTexts } from "../lib/package/split_texts.ts";
import { tallyRow } from "../lib/package/report_images.ts";
import type { StageOutputs } from "../lib/package/upstream_images.ts";
import type { PackageRow } from "../lib/package/rows.ts";
import { renderReport, type ReportImage } from "../lib/report/html.ts";
import { DETAIL_IMAGES, ImageTally } from "../lib/report/image_tally.ts";
import { itemOutputs, packageSet } from "./fixtures/package_set.ts";

// The golden files were written from the same synthetic set by the package's writers before
// they streamed (tests/fixtures/package_golden/).
const GOLDEN = new URL("./fixtures/package_golden/", import.meta.url);
const golden = (name: string) => Deno.readTextFile(new URL(`${name}.golden`, GOLDEN));
const text = async (store: ObjectStore, digest: string) =>
  new TextDecoder().decode(await store.get(digest));

async function described(store: ObjectStore, flip: boolean) {
  const set = await packageSet(store, { count: 40, flip });
  const outputs = Object.fromEntries(
    Object.entries(set.entries).map(([stage, entries]) => [stage, itemOutputs(entries)]),
  ) as unknown as StageOutputs;
  const failures = [
    { id: "img-006", task: "optimize", reason: "diverged" },
    { id: "img-009", task: "verify-sizes", reason: "too small" },
  ];
  const facts = { ...set, labels: set.labels, flip };
  const d = await describeImages(store, {
    splits: set.splits,
    facts,
    outputs,
    notes: { size: 256, crop: "buckets", exclude: ["duplicates"] },
    header: {
      toolVersion: "0.0.0-test",
      config: { package: { layout: "shards" }, x: [1, { y: null }] },
      layout: "shards",
      models: { encoder_sha256: "e".repeat(64), decoder_sha256: null, scaling_factor: 0.18215 },
      classToIdx: { cat: 0, dog: 1 },
      failures,
    },
    reconciliation: () => Promise.resolve(null),
    limit: 40,
  });
  // The rows as the layout reads them, each going into its split's texts and the report's tally.
  const texts: Record<string, string> = {};
  const tally = new ImageTally({ expected: d.counts.train + d.counts.val });
  const watch = async (split: string) => {
    const files = await SplitTexts.open(store, split, { metrics: true });
    return {
      row: async (row: PackageRow) => {
        await files.add(row);
        await tallyRow(store, tally, row, { bucketed: true });
      },
      end: async () => void Object.assign(texts, await files.finish()),
    };
  };
  const order: string[] = [];
  for await (
    const { split, groups } of datasetRows(outputs, d.ids, facts, {
      watch,
      tempPath: (hint) => store.tempPath(hint),
    })
  ) {
    for await (const { bucket, rows } of groups) {
      for await (const row of rows) order.push(`${split}/${bucket}/${row.id}`);
    }
  }
  return { ...d, failures, texts, tally, order };
}

for (const flip of [false, true]) {
  const tag = flip ? "flip" : "plain";
  Deno.test(`package (${tag}): manifest.json, metrics.csv and manifest.txt as before`, async () => {
    const cache = await Deno.makeTempDir();
    try {
      const store = new ObjectStore(cache);
      const d = await described(store, flip);
      const manifest = await text(store, d.manifest);
      const before = await golden(`${tag}.manifest.json`);
      assertEquals(JSON.parse(manifest), JSON.parse(before));
      // The ids here are not array indexes, so even the order of the keys is as it was.
      assertEquals(manifest, before);
      assertEquals(Object.keys(d.texts).sort(), [
        "train/manifest.txt",
        "train/metrics.csv",
        "val/manifest.txt",
        "val/metrics.csv",
      ]);
      for (const [name, digest] of Object.entries(d.texts)) {
        assertEquals(await text(store, digest), await golden(`${tag}.${name.replace("/", ".")}`));
      }
      // Split by split, bucket by bucket, by id: the dataset's order.
      assertEquals(d.order.length, d.counts.train + d.counts.val);
      assertEquals(d.order, [...d.order].sort());
      // Only the temp files of texts being written are in the store's temp folder: none now.
      assertEquals([...Deno.readDirSync(store.tmpDir)].length, 0);
    } finally {
      await Deno.remove(cache, { recursive: true });
    }
  });

  Deno.test(`package (${tag}): report.html of a small dataset as before`, async () => {
    const cache = await Deno.makeTempDir();
    try {
      const store = new ObjectStore(cache);
      const d = await described(store, flip);
      const tally = d.tally;
      const html = renderReport({
        title: "synthetic",
        toolVersion: "0.0.0-test",
        models: {
          encoder: "e".repeat(64),
          decoder: null,
          preset: null,
          normalization: { scaling_factor: 0.18215 },
        },
        splits: Object.entries(d.counts).map(([name, count]) => ({ name, count })),
        images: tally,
        failures: d.failures,
        samples: [],
        config: { optimize: { max_steps: 30 } },
        notes: d.notes,
        reconciliation: null,
      });
      assertEquals(html, await golden(`${tag}.report.html`));
    } finally {
      await Deno.remove(cache, { recursive: true });
    }
  });
}

Deno.test("report: beyond the detail cap, per-image charts show the cap and say how many are not", () => {
  const count = DETAIL_IMAGES + 537;
  const images: ReportImage[] = Array.from({ length: count }, (_, i) => ({
    id: `img-${i}`,
    split: i % 4 ? "train" : "val",
    psnrInitial: 20 + (i % 13) / 3,
    psnrFinal: 24 + (i % 11) / 3,
    ssimInitial: 0.6 + (i % 7) / 100,
    ssimFinal: 0.8 + (i % 5) / 100,
    lossInitial: 0.5,
    lossFinal: 0.25,
    steps: 10 + (i % 9),
    stopReason: i % 3 ? "converged" : "max_steps",
    lossCurve: [[0, 0.5], [10 + (i % 9), 0.25]],
    passes: 11 + (i % 9),
    psnrCurve: [[1, 20], [11 + (i % 9), 24]],
  }));
  const html = renderReport({
    toolVersion: "0.0.0-test",
    splits: [{ name: "train", count: count - 385 }, { name: "val", count: 385 }],
    images,
    failures: [],
    samples: [],
    config: {},
  });
  assertStringIncludes(
    html,
    "1,000 of 1,537 images shown, evenly spread over the dataset; 537 not shown.",
  );
  // Both scatter charts draw one point per shown image, each with its tooltip.
  assertEquals(html.match(/fill-opacity="0.7"><title>/g)?.length, 2 * DETAIL_IMAGES);
  // Counts and medians are of every image.
  assertStringIncludes(html, `<div class="value">1,537</div>`);
  const stopped = images.filter((i) => i.stopReason === "converged").length;
  assertStringIncludes(
    html,
    `<td>converged</td><td class="num">${stopped.toLocaleString("en-US")}`,
  );
});

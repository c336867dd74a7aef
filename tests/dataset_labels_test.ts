import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import {
  LABEL_COLUMNS,
  LabelsError,
  parseLabelsCsv,
  readLabelsCsv,
} from "../lib/dataset/labels.ts";
import { manifestText, splitDataset, SplitError } from "../lib/dataset/splits.ts";
import type { DatasetItem } from "../lib/dataset/item_index.ts";
import { ingestFfhqSpecStream } from "../lib/dataset/ffhq_spec.ts";
import { startMirror } from "./fixtures/mirror.ts";

const HEADER = LABEL_COLUMNS.join(",");
const ROW_0 = "0,20-29,0.9,female,0.99,1.5,-2.0,10.0,3.0,4.0,NoGlasses";
const ROW_1 = "1,50-69,0.5,male,0.7,-30.0,5.0,-45.0,80.0,2.0,Sunglasses";
const ROW_2 = "2,-1,-1,-1,-1,0,0,0,0,0,NoGlasses";

async function labelsError(text: string, file = "labels.csv"): Promise<string> {
  const error = await parseLabelsCsv(text, file).then(() => null, (e) => e);
  ok(error instanceof LabelsError, `expected a LabelsError, got ${error}`);
  return error.message;
}

Deno.test("labels parse into typed rows; BOM, CRLF and quoted commas are accepted", async () => {
  const plain = await parseLabelsCsv([HEADER, ROW_0, ROW_1, ROW_2].join("\n") + "\n", "l.csv");
  strictEqual(plain.length, 3);
  deepStrictEqual(plain[0], {
    id: "0",
    age_group: "20-29",
    age_group_confidence: 0.9,
    gender: "female",
    gender_confidence: 0.99,
    head_pitch: 1.5,
    head_roll: -2,
    head_yaw: 10,
    left_eye_occluded: 3,
    right_eye_occluded: 4,
    glasses: "NoGlasses",
    line: 2,
  });
  strictEqual(plain[2].age_group, null);
  strictEqual(plain[2].gender, null);
  const windows = await parseLabelsCsv(
    "\uFEFF" + [HEADER, ROW_0, ROW_1.replace("Sunglasses", '"Sun, dark"'), ROW_2].join("\r\n"),
    "l.csv",
  );
  strictEqual(windows[1].glasses, "Sun, dark");
  deepStrictEqual(
    windows.map((l) => l.id),
    plain.map((l) => l.id),
  );
});

Deno.test("label errors name file, line and column with expected and found", async () => {
  strictEqual(
    await labelsError("image_number,age,gender\n0,1,2\n"),
    `labels.csv:1: wrong header: expected "${HEADER}", found "image_number,age,gender"`,
  );
  strictEqual(
    await labelsError([HEADER, ROW_0, ROW_1.replace("0.5", "high")].join("\n")),
    `labels.csv:3: column age_group_confidence: expected a number in [0, 1] (or -1 where no face was found), found "high"`,
  );
  strictEqual(
    await labelsError([HEADER, ROW_0, ROW_1.replace("0.7", "1.7")].join("\n")),
    `labels.csv:3: column gender_confidence: expected a number in [0, 1] (or -1 where no face was found), found "1.7"`,
  );
  ok(
    (await labelsError([HEADER, ROW_0.replace("20-29", "20-30")].join("\n"))).startsWith(
      `labels.csv:2: column age_group: expected one of 0-2, 3-6, 7-9,`,
    ),
  );
  strictEqual(
    await labelsError([HEADER, ROW_0, ROW_1, ROW_0].join("\n")),
    "labels.csv:4: duplicate image_number 0 (first at line 2)",
  );
  strictEqual(
    await labelsError([HEADER, ROW_0, "1,50-69,0.5"].join("\n")),
    "labels.csv:3: expected 11 columns, found 3",
  );
  strictEqual(
    await labelsError([HEADER, ROW_0.replace("female", "f")].join("\n")),
    `labels.csv:2: column gender: expected "male" or "female", found "f"`,
  );
  ok(
    (await labelsError([HEADER, '0,"20-29'].join("\n"))).startsWith("labels.csv:2: malformed CSV"),
  );
  strictEqual(await labelsError(""), "labels.csv: empty, expected the header line");
});

function items(
  n: number,
  category: (i: number) => string = (i) => (i < n - 2 ? "training" : "validation"),
) {
  return Array.from({ length: n }, (_, i): DatasetItem => ({
    id: String(i),
    url: `http://127.0.0.1/images1024x1024/00000/${String(i).padStart(5, "0")}.png`,
    path: `images1024x1024/00000/${String(i).padStart(5, "0")}.png`,
    size: 1,
    md5: null,
    pixel_size: null,
    pixel_md5: null,
    category: category(i),
  }));
}

Deno.test("splits by gender and category with confidence and pose filters", async () => {
  const labels = await parseLabelsCsv(
    [
      HEADER,
      ROW_0,
      ROW_1,
      ROW_2,
      "3,3-6,0.8,female,0.9,0,0,0,0,0,NoGlasses",
      "4,30-39,0.95,male,0.95,0,0,5,0,0,ReadingGlasses",
    ].join("\n"),
    "labels.csv",
  );
  const byGender = splitDataset({ items: items(5), labels, splitBy: ["gender"] });
  deepStrictEqual(byGender.splits.map((s) => [s.name, s.ids]), [
    ["female", ["0", "3"]],
    ["male", ["1", "4"]],
  ]);
  deepStrictEqual(byGender.summary.leftOut, { "no face found": 1 });
  strictEqual(
    manifestText(byGender.splits[0]),
    "images1024x1024/00000/00000.png\nimages1024x1024/00000/00003.png\n",
  );
  const both = splitDataset({
    items: items(5),
    labels,
    splitBy: ["gender", "category"],
    minConfidence: { gender: 0.8 },
    filters: { maxAbsYaw: 30, glasses: ["NoGlasses", "ReadingGlasses"] },
  });
  deepStrictEqual(both.summary.perSplit, {
    female_training: 1,
    female_validation: 1,
    male_validation: 1,
  });
  deepStrictEqual(both.summary.leftOut, { "gender confidence below 0.8": 2 });
});

Deno.test("labels and images that disagree fail with both counts and the first ids", async () => {
  const labels = await parseLabelsCsv(
    [HEADER, ROW_0, ROW_1, "7,3-6,0.8,female,0.9,0,0,0,0,0,NoGlasses"].join("\n"),
    "ffhq_aging_labels.csv",
  );
  const error = (() => {
    try {
      splitDataset({
        items: items(4),
        labels,
        splitBy: ["gender"],
        labelsFile: "ffhq_aging_labels.csv",
      });
    } catch (e) {
      return e as Error;
    }
  })();
  ok(error instanceof SplitError);
  strictEqual(
    error.message,
    "labels do not match the images: 2 image(s) without a label (first: 2, 3), " +
      "1 label(s) in ffhq_aging_labels.csv without an image (first: 7 at line 4); " +
      "labels.max_missing is 0",
  );
  const allowed = splitDataset({ items: items(4), labels, splitBy: ["gender"], maxMissing: 3 });
  deepStrictEqual(allowed.summary.imagesWithoutLabel, { count: 2, first: ["2", "3"] });
  deepStrictEqual(allowed.summary.labelsWithoutImage, { count: 1, first: ["7"] });
  deepStrictEqual(allowed.summary.perSplit, { female: 1, male: 1 });
});

Deno.test("without labels, splits come from the source category; label fields are refused", () => {
  const bsds = items(6, (i) => ["train", "val", "test"][i % 3]);
  const result = splitDataset({ items: bsds });
  deepStrictEqual(result.summary.perSplit, { test: 2, train: 2, val: 2 });
  throws(
    () => splitDataset({ items: bsds, splitBy: ["gender"] }),
    /split_by field "gender" needs labels; without labels only "category" is available/,
  );
  throws(
    () => splitDataset({ items: bsds, splitBy: ["colour" as "gender"] }),
    /split_by field "colour" is unknown; expected one of category, gender, age_group, glasses/,
  );
});

Deno.test("the mirror's labels CSV joins its spec exactly; omitted and extra rows are counted", async () => {
  const mirror = await startMirror({
    count: 40,
    imageKind: "noise",
    imageSize: 8,
    labelsOmitIds: [5, 9],
    labelsExtraIds: [40],
  });
  const dir = await Deno.makeTempDir({ prefix: "lf_labels_" });
  try {
    const index = await ingestFfhqSpecStream(
      (await fetch(mirror.specUrl)).body!,
      mirror.specUrl,
    );
    await Deno.writeTextFile(`${dir}/labels.csv`, await (await fetch(mirror.labelsUrl)).text());
    const labels = await readLabelsCsv(`${dir}/labels.csv`);
    strictEqual(labels.length, 39);
    throws(
      () => splitDataset({ items: index.items, labels, splitBy: ["gender"] }),
      /2 image\(s\) without a label \(first: 5, 9\), 1 label\(s\) in labels without an image \(first: 40 at line 40\)/,
    );
    const { summary, splits } = splitDataset({
      items: index.items,
      labels,
      splitBy: ["gender", "category"],
      maxMissing: 3,
    });
    strictEqual(splits.reduce((n, s) => n + s.ids.length, 0), 38);
    strictEqual(summary.leftOut["no label"], 2);
    for (const s of splits) ok(s.manifest.every((p) => p.startsWith("images1024x1024/")));
  } finally {
    await mirror.close();
    await Deno.remove(dir, { recursive: true });
  }
  await rejects(readLabelsCsv("/nonexistent/labels.csv"), Deno.errors.NotFound);
});

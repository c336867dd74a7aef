import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { ingestFfhqSpec, ingestFfhqSpecStream } from "../lib/dataset/ffhq_spec.ts";
import {
  candidateUrls,
  decodeItemIndex,
  encodeItemIndex,
  SpecError,
} from "../lib/dataset/item_index.ts";
import { DownloadError } from "../lib/net/download_error.ts";
import { startMirror } from "./fixtures/mirror.ts";

const mirror = await startMirror({ count: 30, imageKind: "noise", imageSize: 16 });
const specText = new TextDecoder().decode(mirror.specBytes);
const spec = JSON.parse(specText);
await mirror.close();

async function withSpec(text: string, fn: (path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "lf_spec_" });
  try {
    await Deno.writeTextFile(`${dir}/ffhq-dataset-v2.json`, text);
    await fn(`${dir}/ffhq-dataset-v2.json`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Streams `text` in chunks of `size` bytes, so records straddle chunk boundaries. */
function chunked(text: string, size: number): AsyncIterable<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return (async function* () {
    for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
  })();
}

Deno.test("a generated spec of the real schema becomes the compact index, for each component", async () => {
  await withSpec(specText, async (path) => {
    const index = await ingestFfhqSpec(path);
    strictEqual(index.source, "ffhq");
    strictEqual(index.component, "image");
    strictEqual(index.items.length, 30);
    const rec = spec["17"];
    deepStrictEqual(index.items[17], {
      id: "17",
      url: rec.image.file_url,
      path: "images1024x1024/00000/00017.png",
      size: rec.image.file_size,
      md5: rec.image.file_md5,
      pixel_size: [16, 16],
      pixel_md5: rec.image.pixel_md5,
      category: "training",
    });
    strictEqual(index.items[29].category, "validation");
    const thumbs = await ingestFfhqSpec(path, { component: "thumbnail" });
    strictEqual(thumbs.items[3].path, "thumbnails128x128/00000/00003.png");
    strictEqual(thumbs.items[3].md5, spec["3"].thumbnail.file_md5);
    const wild = await ingestFfhqSpec(path, { component: "in_the_wild", limit: 5 });
    strictEqual(wild.items.length, 5);
    strictEqual(wild.items[4].path, "in-the-wild-images/00000/00004.png");
    deepStrictEqual(wild.items[4].pixel_size, spec["4"].in_the_wild.pixel_size);
  });
});

/** Streams `bytes` cut at the given offsets (ascending). */
function cutAt(bytes: Uint8Array, cuts: number[]): AsyncIterable<Uint8Array> {
  return (async function* () {
    let from = 0;
    for (const at of [...cuts, bytes.length]) {
      yield bytes.subarray(from, at);
      from = at;
    }
  })();
}

Deno.test("chunk boundaries anywhere give the same index, even inside a multi-byte character", async () => {
  // Names and titles with 2-, 3- and 4-byte UTF-8 characters, in fields that reach the index
  // (path, URL, id) and in one that does not (the photo title).
  const spec = JSON.parse(specText);
  const names = ["Zoë_Ångström", "東京の夏", "😀🎉", "naïve—ψ"];
  for (const [k, id] of ["2", "5", "11", "23"].entries()) {
    const image = spec[id].image;
    image.file_path = image.file_path.replace(/\.png$/, `_${names[k]}.png`);
    image.file_url = image.file_url.replace(/\.png$/, `_${names[k]}.png`);
    spec[id].metadata.photo_title = `${names[k]} ${names[(k + 1) % 4]}`;
  }
  spec["ид-7"] = spec["7"];
  const text = JSON.stringify(spec, null, 2);
  const bytes = new TextEncoder().encode(text);
  const whole = await ingestFfhqSpecStream(chunked(text, 1 << 20), "spec");
  strictEqual(whole.items.length, 31);
  deepStrictEqual(
    whole.items.filter((i) => [...i.path].some((c) => c.codePointAt(0)! > 0x7f))
      .map((i) => [i.id, i.path, i.url]),
    ["2", "5", "11", "23"].map((id) => [id, spec[id].image.file_path, spec[id].image.file_url]),
  );
  strictEqual(whole.items.at(-1)!.id, "ид-7");
  for (const size of [1, 7, 4093]) {
    deepStrictEqual(await ingestFfhqSpecStream(chunked(text, size), "spec"), whole, `${size}`);
  }
  // Cut inside every multi-byte character: after its first byte, and before its last.
  const continuation = (i: number) => (bytes[i] & 0xc0) === 0x80;
  const afterFirst = [...bytes.keys()].filter((i) => continuation(i) && !continuation(i - 1));
  const beforeLast = [...bytes.keys()].filter((i) => continuation(i) && !continuation(i + 1));
  // One cut per non-ASCII character of the text (about 50 of them).
  const nonAscii = [...text].filter((c) => c.codePointAt(0)! > 0x7f).length;
  ok(nonAscii >= 40, `${nonAscii} non-ASCII characters`);
  strictEqual(afterFirst.length, nonAscii);
  for (const cuts of [afterFirst, beforeLast]) {
    deepStrictEqual(await ingestFfhqSpecStream(cutAt(bytes, cuts), "spec"), whole);
  }
});

Deno.test("the index survives encoding to bytes and back", async () => {
  const index = await ingestFfhqSpecStream(chunked(specText, 65536), "spec");
  const bytes = encodeItemIndex(index);
  deepStrictEqual(decodeItemIndex(bytes), index);
  const lines = new TextDecoder().decode(bytes).split("\n");
  strictEqual(lines.length, 32); // header, 30 items, final newline
  const broken = new TextEncoder().encode(lines.slice(0, 5).join("\n") + "\n");
  let error = await Promise.resolve().then(() => decodeItemIndex(broken, "index.jsonl")).catch((
    e,
  ) => e);
  ok(error instanceof SpecError);
  ok(error.message.includes("index.jsonl: header says 30 items, found 4"), error.message);
  const badMd5 = lines.slice(0, 31).join("\n").replace(index.items[2].md5!, "xyz");
  error = await Promise.resolve().then(() =>
    decodeItemIndex(new TextEncoder().encode(badMd5), "index.jsonl")
  ).catch((e) => e);
  ok(error.message.includes(`index.jsonl:4: item "2" field md5: expected 32 hex digits or null`));
});

async function ingestError(text: string): Promise<{ message: string; path: string }> {
  let out = { message: "", path: "" };
  await withSpec(text, async (path) => {
    const error = await ingestFfhqSpec(path).then(() => null, (e) => e);
    ok(error instanceof SpecError, `expected a SpecError, got ${error}`);
    out = { message: error.message, path };
  });
  return out;
}

function lineOf(text: string, needle: string): number {
  return text.slice(0, text.indexOf(needle)).split("\n").length;
}

Deno.test("a record without file_md5 is reported with file, line, item and field", async () => {
  const broken = JSON.parse(specText);
  delete broken["12"].image.file_md5;
  const text = JSON.stringify(broken, null, 1);
  const { message, path } = await ingestError(text);
  strictEqual(
    message,
    `${path}:${lineOf(text, '"12":')}: item "12" field image.file_md5: ` +
      "expected 32 hex digits, found nothing (field missing)",
  );
});

Deno.test("malformed JSON is reported with its position", async () => {
  const at = specText.indexOf('"file_size": ', specText.indexOf('"5": {')) + '"file_size": '.length;
  const text = specText.slice(0, at) + "12 " + specText.slice(at);
  const { message, path } = await ingestError(text);
  // The byte offset points at the stray "3" of "12 3…", whatever V8's own wording is.
  ok(
    message.startsWith(
      `${path}: malformed JSON in the record of "5" at line 1, column ${at + 4} (byte ${at + 3}): `,
    ),
    message,
  );
  strictEqual(text[at + 3], String(spec["5"].image.file_size)[0]);

  const truncated = await ingestError(specText.slice(0, specText.length / 2));
  ok(truncated.message.includes("unexpected end of file inside the record of"), truncated.message);

  const junk = await ingestError(specText.replace('}, "3":', '} x "3":'));
  ok(junk.message.includes(`expected ',' or '}' after the record of "2", found 'x'`), junk.message);
  ok(/at line \d+, column \d+ \(byte \d+\)/.test(junk.message), junk.message);
});

Deno.test("duplicate ids, negative sizes, bad MD5, unsafe paths and non-http URLs are refused", async () => {
  const dup = specText.replace('"4": {', '"3": {');
  const d = await ingestError(dup);
  ok(
    d.message.endsWith(`duplicate item id "3" (first at line ${lineOf(dup, '"3": {')})`),
    d.message,
  );

  const cases: Array<
    [string, (r: { category: unknown; image: Record<string, unknown> }) => void, string]
  > = [
    [
      "image.file_size",
      (r) => (r.image.file_size = -4),
      "expected a non-negative integer, found -4",
    ],
    ["image.file_md5", (r) => (r.image.file_md5 = "abc"), 'expected 32 hex digits, found "abc"'],
    [
      "image.file_path",
      (r) => (r.image.file_path = "../../etc/passwd"),
      `expected a relative path without '..' (it contains '..'), found "../../etc/passwd"`,
    ],
    [
      "image.file_path",
      (r) => (r.image.file_path = "/etc/passwd"),
      `(it is absolute), found "/etc/passwd"`,
    ],
    [
      "image.file_url",
      (r) => (r.image.file_url = "file:///etc/passwd"),
      "only http(s) URLs can be downloaded, found file:",
    ],
    ["category", (r) => (r.category = "test"), `expected "training" or "validation", found "test"`],
  ];
  for (const [field, mutate, expected] of cases) {
    const broken = JSON.parse(specText);
    mutate(broken["7"]);
    const { message, path } = await ingestError(JSON.stringify(broken));
    ok(message.startsWith(`${path}:1: item "7" field ${field}: `), message);
    ok(message.includes(expected), `${message}\n  should include: ${expected}`);
  }
});

Deno.test("candidate URLs: mirrors first, then the record's URL; bad mirrors named", async () => {
  const index = await ingestFfhqSpecStream(chunked(specText, 65536), "spec");
  const item = index.items[17];
  deepStrictEqual(candidateUrls(item, ["http://m1.example/ffhq/", "https://m2.example"]), [
    "http://m1.example/ffhq/images1024x1024/00000/00017.png",
    "https://m2.example/images1024x1024/00000/00017.png",
    item.url,
  ]);
  deepStrictEqual(candidateUrls(item), [item.url]);
  const error = await Promise.resolve().then(() => candidateUrls(item, ["ftp://m.example/"]))
    .catch((e) => e);
  ok(error instanceof DownloadError);
  strictEqual(error.kind, "bad_url");
  ok(error.message.includes('mirror "ftp://m.example/"'), error.message);
  await rejects(
    Promise.resolve().then(() => candidateUrls({ ...item, path: "../x.png" }, ["http://m/"])),
    /item 17: file_path "\.\.\/x\.png" cannot be used: it contains '\.\.'/,
  );
});

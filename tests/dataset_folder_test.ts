import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { ingestFolder } from "../lib/dataset/folder_spec.ts";
import { inPlaceImage, readInPlace, SourceChangedError } from "../lib/dataset/image_source.ts";
import { SpecError } from "../lib/dataset/item_index.ts";
import { parseUrlList } from "../lib/dataset/url_list.ts";
import { splitDataset } from "../lib/dataset/splits.ts";
import { syntheticImage } from "./fixtures/synthetic_images.ts";

Deno.test("a BSDS500-style folder becomes an index of local items with sizes and MD5s", async () => {
  const root = await Deno.makeTempDir({ prefix: "lf_bsds_" });
  try {
    const expected = new Map<string, Uint8Array>();
    let n = 0;
    for (const split of ["train", "val", "test"]) {
      await Deno.mkdir(`${root}/${split}`);
      for (const name of ["2092", "8023"]) {
        const { png } = await syntheticImage(n++, { width: 24, height: 16 });
        await Deno.writeFile(`${root}/${split}/${name}.png`, png);
        expected.set(`${split}/${name}`, png);
      }
      await Deno.writeTextFile(`${root}/${split}/Thumbs.db`, "not an image");
    }
    const index = await ingestFolder(root);
    strictEqual(index.source, "folder");
    deepStrictEqual(index.items.map((i) => i.id), [
      "test/2092",
      "test/8023",
      "train/2092",
      "train/8023",
      "val/2092",
      "val/8023",
    ]);
    for (const item of index.items) {
      const png = expected.get(item.id)!;
      strictEqual(item.url, null);
      strictEqual(item.size, png.length);
      strictEqual(item.md5, createHash("md5").update(png).digest("hex"));
      strictEqual(item.category, item.id.split("/")[0]);
      strictEqual(item.local_path, `${root}/${item.id}.png`);
      strictEqual(item.path, `${item.id}.png`);
    }
    // Read where it lies, and checked against what the listing found.
    const first = index.items[0];
    const image = inPlaceImage(first, "image")!;
    deepStrictEqual(await readInPlace(image), expected.get(first.id));
    await Deno.writeFile(first.local_path!, new Uint8Array([1, 2, 3]), { append: true });
    const changed = createHash("md5").update(await Deno.readFile(first.local_path!)).digest("hex");
    await rejects(
      readInPlace(image),
      (e: Error) =>
        e instanceof SourceChangedError &&
        e.message ===
          `${first.local_path} changed since it was listed: expected ${first.size} bytes with ` +
            `MD5 ${first.md5}, found ${first.size! + 3} bytes with MD5 ${changed}. Run again to ` +
            "list it anew (if its size and modification time are as before, touch it first)",
    );
    deepStrictEqual(splitDataset({ items: index.items }).summary.perSplit, {
      test: 2,
      train: 2,
      val: 2,
    });
    deepStrictEqual(index.skipped, [
      { path: "test/Thumbs.db", reason: "not an image by its extension (.db)" },
      { path: "train/Thumbs.db", reason: "not an image by its extension (.db)" },
      { path: "val/Thumbs.db", reason: "not an image by its extension (.db)" },
    ]);
    await rejects(
      ingestFolder(`${root}/missing`),
      (e: Error) =>
        e instanceof SpecError &&
        e.message === `the dataset folder ${root}/missing does not exist`,
    );
    await Deno.mkdir(`${root}/empty`);
    await Deno.writeTextFile(`${root}/empty/notes.txt`, "not an image");
    await rejects(
      ingestFolder(`${root}/empty`),
      /no images found \(looked for \.jpg, \.jpeg, \.png, \.webp, \.tif, \.tiff, \.avif, \.gif in the folder and below; skipped 1: notes\.txt\)/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("URL lists: plain text and CSV with size and md5; errors name the line", async () => {
  const plain = await parseUrlList(
    "# my images\nhttps://example.org/a/cat.PNG\n\nhttp://example.org/b.jpg?x=1\n",
    "list.txt",
  );
  deepStrictEqual(plain.items.map((i) => [i.id, i.url, i.path, i.size, i.md5]), [
    ["0", "https://example.org/a/cat.PNG", "0.png", null, null],
    ["1", "http://example.org/b.jpg?x=1", "1.jpg", null, null],
  ]);
  const md5 = "0123456789abcdef0123456789ABCDEF";
  const csv = await parseUrlList(
    `url,size,md5,category\r\n"https://example.org/x,1.png",123,${md5},train\r\n`,
    "list.csv",
  );
  deepStrictEqual(csv.items[0], {
    id: "0",
    url: "https://example.org/x,1.png",
    path: "0.png",
    size: 123,
    md5: md5.toLowerCase(),
    pixel_size: null,
    pixel_md5: null,
    category: "train",
  });
  const error = async (text: string) => {
    const e = await parseUrlList(text, "list.csv").then(() => null, (x) => x);
    ok(e instanceof SpecError, String(e));
    return e.message;
  };
  strictEqual(
    await error("https://example.org/a.png\nfile:///etc/passwd\n"),
    `list.csv:2: column url: expected an http(s) URL (only http(s) URLs can be downloaded, found file:), found "file:///etc/passwd"`,
  );
  strictEqual(
    await error("url,size\nhttps://example.org/a.png,-3\n"),
    `list.csv:2: column size: expected a byte count, found "-3"`,
  );
  strictEqual(
    await error("url,md5\nhttps://example.org/a.png,abc\n"),
    `list.csv:2: column md5: expected 32 hex digits, found "abc"`,
  );
  strictEqual(
    await error("url,path\nhttps://example.org/a.png,../a.png\n"),
    `list.csv:2: column path: expected a relative path without '..' (it contains '..'), found "../a.png"`,
  );
  strictEqual(
    await error("url,id\nhttps://example.org/a.png,7\nhttps://example.org/b.png,7\n"),
    `list.csv:3: duplicate id "7" (first at line 2)`,
  );
  strictEqual(
    await error("url,colour\nhttps://example.org/a.png,red\n"),
    `list.csv:1: unknown column "colour"; expected some of url, id, size, md5, path, category (url required)`,
  );
});

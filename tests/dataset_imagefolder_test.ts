/**
 * The class-folder listing: ids, classes, the flat split's CSV (matched with or without the
 * extension; bad rows named by line), what is skipped or fails alone, and shard patterns.
 */
import { join } from "node:path";
import { assertEquals, assertRejects } from "./fixtures/assert.ts";
import { ingestImageFolder } from "../lib/dataset/imagefolder_spec.ts";
import { expandGlob } from "../lib/dataset/shard_glob.ts";

async function files(dir: string, rels: string[]): Promise<void> {
  for (const rel of rels) {
    await Deno.mkdir(join(dir, rel, ".."), { recursive: true });
    await Deno.writeFile(join(dir, rel), new TextEncoder().encode(rel));
  }
}

Deno.test("imagefolder: loose files are skipped, an image the CSV does not name fails alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await files(dir, [
      "train/a/1.jpg",
      "train/a/deep/2.jpg",
      "train/loose.jpg",
      "val/x.jpg",
      "val/y.JPEG",
    ]);
    await Deno.writeTextFile(join(dir, "val.csv"), "\uFEFFfile,class\r\nx,a\r\nz.jpg,b\r\n");
    const index = await ingestImageFolder({
      splits: {
        val: { path: join(dir, "val"), labels: join(dir, "val.csv") },
        train: join(dir, "train"),
      },
    });
    assertEquals(index.items.map((i) => [i.id, i.class_name ?? null, i.error ?? null]), [
      ["train/a/1", "a", null],
      ["train/a/deep/2", "a", null],
      ["val/x", "a", null],
      [
        "val/y",
        null,
        `val/y.JPEG: ${
          join(dir, "val.csv")
        } names no class for it (expected a row "y.JPEG,<class>")`,
      ],
    ]);
    assertEquals(index.skipped, [
      { path: "train/loose.jpg", reason: "not inside a class folder" },
      {
        path: join(dir, "val.csv"),
        reason: `1 row(s) name no image of ${join(dir, "val")}: z.jpg`,
      },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("imagefolder: a CSV with another header or a conflicting row names its line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await files(dir, ["val/x.jpg"]);
    const csv = join(dir, "val.csv");
    const list = () =>
      ingestImageFolder({ splits: { val: { path: join(dir, "val"), labels: csv } } });
    await Deno.writeTextFile(csv, "image,label\nx.jpg,a\n");
    await assertRejects(list, `${csv}:1: expected the header "file,class", found "image,label"`);
    await Deno.writeTextFile(csv, "file,class\nx.jpg,a\nx.jpg,b\n");
    await assertRejects(list, `${csv}:3: x.jpg has class "a" on an earlier line, found "b"`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shard patterns: classes, ?, and no dot files; a pattern matching nothing is named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await files(dir, ["s/00000.tar", "s/00001.tar", "s/00002.tar", "s/.00003.tar", "s/x.txt"]);
    assertEquals(await expandGlob(join(dir, "s/0000[0-1].tar")), [
      join(dir, "s/00000.tar"),
      join(dir, "s/00001.tar"),
    ]);
    assertEquals((await expandGlob(join(dir, "s/*.ta?"))).length, 3);
    assertEquals(await expandGlob(join(dir, "*/00002.tar")), [join(dir, "s/00002.tar")]);
    await assertRejects(() => expandGlob(join(dir, "s/*.parquet")), "matches no file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

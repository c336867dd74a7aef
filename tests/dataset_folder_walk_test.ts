import { createHash } from "node:crypto";
import { join } from "node:path";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { requirement, testIf } from "./fixtures/skip.ts";
import { walkFingerprint, walkFolder } from "../lib/dataset/folder_walk.ts";
import { loadLibcDir } from "../lib/dataset/libc_dir.ts";
import { DigestMemo } from "../lib/dataset/digest_memo.ts";
import { WalkDigests } from "../lib/dataset/walk_digests.ts";
import { folderFingerprint, ingestFolder } from "../lib/dataset/folder_spec.ts";
import { imageNameTest } from "../lib/dataset/image_extensions.ts";

const isImage = imageNameTest();
const libc = requirement(
  "platform",
  loadLibcDir() !== undefined,
  "the C library's getdents64 and statx cannot be used here (Linux with glibc ≥ 2.30, FFI granted)",
);
/** A time well in the past, so that digests are trusted by their time. */
const OLD = new Date("2020-01-01T00:00:00Z");

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lf_walk_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function file(path: string, text: string, when = OLD): Promise<void> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeTextFile(path, text);
  await Deno.utime(path, when, when);
}

/** A tree with what a listing meets: nesting, hidden files, odd names, links, loops, a FIFO. */
async function trickyTree(dir: string): Promise<string> {
  const root = join(dir, "data");
  const elsewhere = join(dir, "elsewhere");
  await file(join(root, "a.jpg"), "a");
  await file(join(root, "a", "b.png"), "bb");
  await file(join(root, "ab.png"), "ab");
  await file(join(root, "train", "ünïcødé 漢字.webp"), "u");
  await file(join(root, "train", "line\nbreak.png"), "n");
  await file(join(root, "train", "deep", "er", "x.PNG"), "x");
  await file(join(root, "train", "empty.jpg"), "");
  await file(join(root, ".hidden", "h.png"), "h");
  await file(join(root, "train", ".h.png"), "h");
  await file(join(root, "notes.txt"), "n");
  await file(join(elsewhere, "far.png"), "far");
  await Deno.symlink(elsewhere, join(root, "linked"));
  await Deno.symlink(join(root, "a.jpg"), join(root, "again.jpg"));
  await Deno.symlink(join(dir, "gone.png"), join(root, "dead.png"));
  await Deno.symlink(root, join(root, "train", "up"));
  await new Deno.Command("mkfifo", { args: [join(root, "pipe.png")] }).output();
  return root;
}

testIf(libc, {
  name:
    "the C library and Deno read a tricky tree alike: entries, problems, skipped files, fingerprint",
  fn: () =>
    withDir(async (dir) => {
      const root = await trickyTree(dir);
      const viaLibc = await walkFolder(root, { isImage, reader: "libc" });
      const viaDeno = await walkFolder(root, { isImage, reader: "deno" });
      assertEquals(viaLibc, viaDeno);
      assertEquals(viaLibc.rels, [
        "a/b.png",
        "a.jpg",
        "ab.png",
        "again.jpg",
        "dead.png",
        "linked/far.png",
        "pipe.png",
        "train/deep/er/x.PNG",
        "train/empty.jpg",
        "train/line\nbreak.png",
        "train/up",
        "train/ünïcødé 漢字.webp",
      ]);
      assertEquals([...viaLibc.problems.values()], [
        `dead.png is a broken link: its target ${dir}/gone.png does not exist`,
        "pipe.png is not a regular file",
        "train/up is a link loop: it leads back to the dataset folder itself",
      ]);
      assertEquals(viaLibc.skipped.map((s) => s.path), ["notes.txt"]);
      const info = await Deno.stat(join(root, "a", "b.png"));
      assertEquals([viaLibc.size[0], viaLibc.mtimeMs[0], viaLibc.ino[0]], [
        2,
        OLD.getTime(),
        info.ino,
      ]);
      assertEquals(walkFingerprint(viaLibc), walkFingerprint(viaDeno));
    }),
});

Deno.test("the fingerprint changes with a file's size, time or inode, and with skipped files; not otherwise", async () => {
  await withDir(async (dir) => {
    const root = join(dir, "data");
    await file(join(root, "s", "1.png"), "one");
    await file(join(root, "s", "2.png"), "two");
    const fingerprint = () => folderFingerprint(root);
    let before = await fingerprint();
    assertEquals(await fingerprint(), before, "nothing changed");
    const steps: [string, () => Promise<void>][] = [
      ["touched", () => Deno.utime(join(root, "s", "1.png"), new Date(), new Date())],
      ["rewritten at the same size", () => file(join(root, "s", "1.png"), "ONE")],
      ["replaced by another file of the same size and time", async () => {
        await file(join(root, "s", "other"), "owe");
        await Deno.rename(join(root, "s", "other"), join(root, "s", "1.png"));
      }],
      ["a skipped file added", () => file(join(root, "readme.txt"), "hi")],
      ["an image added", () => file(join(root, "s", "3.png"), "three")],
    ];
    for (const [what, change] of steps) {
      await change();
      const after = await fingerprint();
      assert(after !== before, `${what}: the fingerprint did not change`);
      before = after;
    }
  });
});

Deno.test("a second listing reads only what changed; a renamed file is found by its inode", async () => {
  await withDir(async (dir) => {
    const root = join(dir, "data");
    for (let k = 0; k < 20; k++) await file(join(root, `d${k % 3}`, `${k}.png`), `image ${k}`);
    const list = async (memo: DigestMemo) => {
      const digests = new WalkDigests(memo);
      const index = await ingestFolder(root, { digests });
      return { index, digests };
    };
    const first = await list(DigestMemo.empty());
    assertEquals(first.digests.counts, { hashed: 20, reused: 0 });
    const second = await list(DigestMemo.decode(first.digests.memo()));
    assertEquals(second.digests.counts, { hashed: 0, reused: 20 });
    assertEquals(second.index, first.index);

    // One image edited, one renamed, one added: one read each for the edited and the new one.
    await file(join(root, "d0", "0.png"), "edited", new Date("2021-01-01T00:00:00Z"));
    await Deno.rename(join(root, "d1", "1.png"), join(root, "d2", "renamed.png"));
    await file(join(root, "d2", "new.png"), "new");
    const third = await list(DigestMemo.decode(second.digests.memo()));
    assertEquals(third.digests.counts, { hashed: 2, reused: 19 });
    const md5 = (text: string) => createHash("md5").update(text).digest("hex");
    const byId = Object.fromEntries(third.index.items.map((i) => [i.id, i.md5]));
    assertEquals(byId["d0/0"], md5("edited"));
    assertEquals(byId["d2/renamed"], md5("image 1"));
    assertEquals(byId["d2/new"], md5("new"));
    assertEquals(byId["d1/1"], undefined);

    // A file changed just before it was hashed is not trusted by its time: read again next time.
    await file(join(root, "d0", "3.png"), "fresh", new Date());
    const fourth = await list(DigestMemo.decode(third.digests.memo()));
    assertEquals(fourth.digests.counts, { hashed: 1, reused: 20 });
    const fifth = await list(DigestMemo.decode(fourth.digests.memo()));
    assertEquals(fifth.digests.counts, { hashed: 1, reused: 20 });
    assertEquals(fifth.index, fourth.index);
  });
});

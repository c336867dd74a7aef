import { createHash } from "node:crypto";
import { join } from "node:path";
import sharp, { type FormatEnum } from "sharp";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { folderFingerprint, ingestFolder } from "../lib/dataset/folder_spec.ts";
import { IMAGE_EXTENSIONS } from "../lib/dataset/image_extensions.ts";
import { decodeItemIndex, encodeItemIndex } from "../lib/dataset/item_index.ts";

const LISTER = new URL("./fixtures/list_folder.ts", import.meta.url).pathname;

async function image(
  path: string,
  format: keyof FormatEnum | "avif",
  size = 24,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(
    await sharp({
      create: { width: size, height: size, channels: 3, background: { r: 90, g: 140, b: 30 } },
    }).toFormat(format).toBuffer(),
  );
  await Deno.writeFile(path, bytes);
  return bytes;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lf_folder_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("every format sharp decodes is listed by default; other files are skipped and named", async () => {
  await withDir(async (root) => {
    const formats: [string, keyof FormatEnum | "avif"][] = [
      ["a.jpg", "jpeg"],
      ["b.jpeg", "jpeg"],
      ["c.png", "png"],
      ["d.webp", "webp"],
      ["e.tif", "tiff"],
      ["f.tiff", "tiff"],
      ["g.avif", "avif"],
      ["h.gif", "gif"],
      ["I.PNG", "png"],
    ];
    for (const [name, format] of formats) {
      const bytes = await image(join(root, name), format);
      // Each of them is an image sharp reads back at its size.
      assertEquals((await sharp(bytes).metadata()).width, 24, name);
    }
    await Deno.writeTextFile(join(root, "notes.txt"), "my photos");
    await Deno.writeTextFile(join(root, "README"), "no extension");
    await Deno.writeTextFile(join(root, ".DS_Store"), "hidden");
    const index = await ingestFolder(root);
    assertEquals(index.items.map((i) => i.id), ["I", "a", "b", "c", "d", "e", "f", "g", "h"]);
    assert(index.items.every((i) => i.error === undefined && i.category === "all"));
    assertEquals(index.skipped, [
      { path: "README", reason: "not an image by its extension (none)" },
      { path: "notes.txt", reason: "not an image by its extension (.txt)" },
    ]);
    assertEquals([...IMAGE_EXTENSIONS], [
      ".jpg",
      ".jpeg",
      ".png",
      ".webp",
      ".tif",
      ".tiff",
      ".avif",
      ".gif",
    ]);
    // Asked for JPEG only, the others are skipped, each named.
    const jpegs = await ingestFolder(root, { extensions: [".jpg", ".jpeg"] });
    assertEquals(jpegs.items.map((i) => i.id), ["a", "b"]);
    assertEquals(jpegs.skipped.length, 9);
    // Without the dot, an extension still means the file's ending after a dot.
    await Deno.writeTextFile(join(root, "notapng"), "x");
    const pngs = await ingestFolder(root, { extensions: ["PNG"] });
    assertEquals(pngs.items.map((i) => i.id), ["I", "c"]);
  });
});

Deno.test("an id clash fails the clashing files only, each named; an empty file says it is empty", async () => {
  await withDir(async (root) => {
    await Deno.mkdir(join(root, "trip"));
    await image(join(root, "trip", "photo.jpg"), "jpeg");
    await image(join(root, "trip", "photo.png"), "png");
    await image(join(root, "trip", "other.png"), "png");
    // "x.jpg.png" would take the id "x.jpg", which the clashing x.jpg then keeps.
    await image(join(root, "x.jpg"), "jpeg");
    await image(join(root, "x.png"), "png");
    await image(join(root, "x.jpg.png"), "png");
    await Deno.writeFile(join(root, "trip", "empty.jpg"), new Uint8Array());
    const index = await ingestFolder(root);
    const byId = Object.fromEntries(index.items.map((i) => [i.id, i]));
    assertEquals(Object.keys(byId).sort(), [
      "trip/empty",
      "trip/other",
      "trip/photo.jpg",
      "trip/photo.png",
      "x.jpg",
      "x.jpg.png",
      "x.png",
    ]);
    assertEquals(byId["trip/other"].error, undefined);
    assertEquals(
      byId["trip/photo.jpg"].error,
      'trip/photo.jpg and trip/photo.png both give the item id "trip/photo" (an id is the path ' +
        "without its extension): rename one of them",
    );
    assertEquals(
      byId["trip/photo.png"].error,
      'trip/photo.png and trip/photo.jpg both give the item id "trip/photo" (an id is the path ' +
        "without its extension): rename one of them",
    );
    assertMatch(byId["x.jpg.png"].error!, /^x\.jpg\.png and x\.jpg both give the item id "x\.jpg"/);
    assertEquals(byId["trip/empty"].error, "trip/empty.jpg is empty (0 bytes)");
    assertEquals(byId["trip/empty"].category, "trip");
    // The reasons survive the stored index, where fetch-images reads them.
    assertEquals(decodeItemIndex(encodeItemIndex(index)).items, index.items);
  });
});

Deno.test("links: followed like folders and files, a broken one or a loop fails that entry only", async () => {
  await withDir(async (dir) => {
    const root = join(dir, "dataset");
    const elsewhere = join(dir, "elsewhere");
    await Deno.mkdir(join(root, "own"), { recursive: true });
    await Deno.mkdir(elsewhere);
    await image(join(root, "own", "a.png"), "png");
    const edited = join(elsewhere, "b.png");
    await image(edited, "png");
    await Deno.symlink(elsewhere, join(root, "linked"));
    await Deno.symlink(join(root, "own", "a.png"), join(root, "again.png"));
    await Deno.symlink(join(dir, "gone.jpg"), join(root, "dead.jpg"));
    await Deno.symlink(join(dir, "gone.txt"), join(root, "dead.txt"));
    await Deno.symlink(join(root, "self.png"), join(root, "self.png"));
    await Deno.symlink(root, join(root, "own", "up"));

    const index = await ingestFolder(root);
    const byId = Object.fromEntries(index.items.map((i) => [i.id, i]));
    assertEquals(Object.keys(byId), ["again", "dead", "linked/b", "own/a", "own/up", "self"]);
    assertEquals(byId["linked/b"].error, undefined);
    assertEquals(byId["linked/b"].category, "linked");
    assertEquals(byId["again"].md5, byId["own/a"].md5);
    assertEquals(
      byId["dead"].error,
      `dead.jpg is a broken link: its target ${join(dir, "gone.jpg")} does not exist`,
    );
    assertEquals(
      byId["self"].error,
      `self.png is a link loop: ${root}/self.png leads back to itself`,
    );
    assertEquals(
      byId["own/up"].error,
      "own/up is a link loop: it leads back to the dataset folder itself",
    );
    assertEquals(index.skipped, [
      { path: "dead.txt", reason: "not an image by its extension (.txt)" },
    ]);

    // Freshness follows the link the way the listing does: an image edited in place behind
    // it (same name, new bytes) changes the fingerprint.
    const before = await folderFingerprint(root);
    assertEquals(await folderFingerprint(root), before);
    await image(edited, "png", 32);
    await Deno.utime(edited, new Date(), new Date(Date.now() + 5_000));
    const after = await folderFingerprint(root);
    assert(after !== before, "editing an image behind a link left the fingerprint unchanged");
    const relisted = await ingestFolder(root);
    const md5 = createHash("md5").update(await Deno.readFile(edited)).digest("hex");
    assertEquals(relisted.items.find((i) => i.id === "linked/b")!.md5, md5);
  });
});

Deno.test("a link to a file outside the paths the run may read is refused with a message", async () => {
  await withDir(async (dir) => {
    const root = join(dir, "dataset");
    const granted = join(dir, "granted");
    const secret = join(dir, "secret");
    await Deno.mkdir(root);
    await Deno.mkdir(granted);
    await Deno.mkdir(secret);
    await image(join(root, "mine.png"), "png");
    await image(join(granted, "shared.png"), "png");
    await Deno.writeTextFile(join(secret, "hostname"), "db-server-7\n");
    await Deno.symlink(join(granted, "shared.png"), join(root, "shared.png"));
    await Deno.symlink(join(secret, "hostname"), join(root, "hostname.png"));
    await Deno.symlink(secret, join(root, "secrets"));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", `--allow-read=${root},${granted}`, LISTER, root],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    const index = JSON.parse(new TextDecoder().decode(out.stdout));
    const byId = Object.fromEntries(
      (index.items as { id: string; error?: string; md5: string | null }[]).map((i) => [i.id, i]),
    );
    assertEquals(Object.keys(byId), ["hostname", "mine", "secrets", "shared"]);
    assertEquals(byId.mine.error, undefined);
    assertEquals(byId.shared.error, undefined);
    const refused = (name: string, target: string) =>
      `${name} links to ${target}, outside the dataset folder and the paths this run may read: ` +
      "copy the file into the dataset folder, or point dataset.path at the folder that holds it";
    assertEquals(byId.hostname.error, refused("hostname.png", join(secret, "hostname")));
    assertEquals(byId.hostname.md5, null, "the refused file was read");
    assertEquals(byId.secrets.error, refused("secrets", secret));
  });
});

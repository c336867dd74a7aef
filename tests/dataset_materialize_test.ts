import { join } from "node:path";
import { assert, assertEquals, assertRejects } from "./fixtures/assert.ts";
import { materialize } from "../lib/dataset/materialize.ts";
import { ObjectStore } from "../lib/store/objects.ts";

Deno.test("materialize links objects into the tree and replaces only files it laid out itself", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lf_materialize_" });
  try {
    const store = new ObjectStore(join(dir, "cache"));
    const tree = join(dir, "tree");
    const a = await store.put(new TextEncoder().encode("first version"));
    const b = await store.put(new TextEncoder().encode("second version"));
    const rel = "images1024x1024/00000/00001.png";
    const target = join(tree, rel);

    assertEquals(await materialize(store, a, tree, rel), null);
    assertEquals((await Deno.stat(target)).nlink, 2);
    // Laid out again: nothing to do.
    assertEquals(await materialize(store, a, tree, rel), null);
    // A link latentforge made to another object is replaced.
    assertEquals(await materialize(store, b, tree, rel), null);
    assertEquals(await Deno.readTextFile(target), "second version");

    // The user's own file with other bytes is left as it was, and reported.
    const mine = join(tree, "images1024x1024/00000/00002.png");
    await Deno.writeTextFile(mine, "my notes");
    const before = await Deno.stat(mine);
    const conflict = await materialize(store, a, tree, "images1024x1024/00000/00002.png");
    assert(conflict !== null);
    assertEquals(conflict.path, mine);
    assert(conflict.why.startsWith("holds other bytes"), conflict.why);
    assertEquals(await Deno.readTextFile(mine), "my notes");
    assertEquals((await Deno.stat(mine)).ino, before.ino);

    // A user's file that already holds the right bytes is kept, not replaced by a link.
    const same = join(tree, "images1024x1024/00000/00003.png");
    await Deno.writeTextFile(same, "first version");
    const sameBefore = await Deno.stat(same);
    assertEquals(await materialize(store, a, tree, "images1024x1024/00000/00003.png"), null);
    assertEquals((await Deno.stat(same)).ino, sameBefore.ino);

    // A folder in the way is reported; an unsafe path is refused.
    await Deno.mkdir(join(tree, "images1024x1024/00000/00004.png"));
    assertEquals(
      (await materialize(store, a, tree, "images1024x1024/00000/00004.png"))?.why,
      "not a regular file",
    );
    await assertRejects(() => materialize(store, a, tree, "../escape.png"), "contains '..'");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

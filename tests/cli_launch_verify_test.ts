import { join } from "node:path";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { permissionsFor } from "../lib/cli/launch.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { publishDirectory } from "../lib/store/publish.ts";

Deno.test("verify may read and repair the folders its cache published, and nothing else", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-launch-verify-" });
  try {
    const cache = join(dir, "cache");
    const store = new ObjectStore(cache);
    const digest = await store.put(new TextEncoder().encode("latents"));
    await publishDirectory(store, { "all/latents.npz": digest }, join(dir, "data", "out"));
    const p = await permissionsFor(["verify", "--cache", cache]);
    assertEquals(p.write, [cache, join(dir, "data")]);
    assert(p.read.includes(join(dir, "data")), `read: ${p.read}`);
    assertEquals(p.net, []);
    // gc publishes nothing and repairs nothing: the cache only.
    assertEquals((await permissionsFor(["gc", "--cache", cache])).write, [cache]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

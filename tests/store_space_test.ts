import { join } from "node:path";
import { assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { mountTmpfs, tmpfsRequirement } from "./fixtures/tmpfs.ts";
import { testIf } from "./fixtures/skip.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { SpaceCheck } from "../lib/store/space.ts";

const mounts = await tmpfsRequirement();

testIf(mounts, {
  name: "the work a run queues is weighed against the free space, and the user warned once",
  async fn() {
    const fs = await mountTmpfs({ sizeKb: 256 });
    if (typeof fs === "string") throw new Error(fs);
    try {
      const store = new ObjectStore(join(fs.path, "cache"));
      const warnings: string[] = [];
      const space = new SpaceCheck(store, (m) => warnings.push(m));
      // Declared sizes (a spec's file sizes): 3 × 60 KB fit in 256 KB, a fifth does not.
      for (let i = 0; i < 3; i++) space.expect("fetch-images", { size: 60_000 }, () => []);
      assertEquals(warnings, []);
      // Sizes learnt from what the task's recorded actions stored (50 KB each): the second
      // passes the 262 KB free when the run started.
      const recorded = [
        [await store.put(new Uint8Array(50_000).fill(1))],
        [await store.put(new Uint8Array(50_000).fill(2))],
      ];
      for (let i = 0; i < 5; i++) space.expect("preprocess", undefined, () => recorded);
      assertEquals(warnings.length, 1);
      assertStringIncludes(warnings[0], "fetch-images 3 items, ~180.0 KB");
      assertStringIncludes(warnings[0], "preprocess 2 items, ~100.0 KB");
      assertStringIncludes(warnings[0], fs.path);
      assertStringIncludes(warnings[0], "and 262.1 KB are free");
      space.expect("preprocess", undefined, () => recorded);
      assertEquals(warnings.length, 1, "warned more than once");
    } finally {
      await fs.close();
    }
  },
});

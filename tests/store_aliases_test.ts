import { assertEquals } from "./fixtures/assert.ts";
import { ObjectAliases } from "../lib/store/aliases.ts";
import { collectGarbage } from "../lib/store/maintenance.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { openRecords } from "../lib/store/records.ts";

Deno.test("an alias announced for an object that never reached the store is ignored, and gc drops it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lf_aliases_" });
  const records = await openRecords(dir);
  try {
    const store = new ObjectStore(dir);
    // A run killed between naming a download and storing it leaves the name alone.
    const never = "ab".repeat(32);
    await records.putAliases([["md5:0cc175b9c0f1b6a831c399e269772661", never]]);
    assertEquals([...(await records.aliases()).values()], [never]);
    const aliases = new ObjectAliases(records, store);
    assertEquals(await aliases.lookup("md5:0cc175b9c0f1b6a831c399e269772661"), null);
    await collectGarbage(store, records);
    assertEquals((await records.aliases()).size, 0);
  } finally {
    records.close();
    await Deno.remove(dir, { recursive: true });
  }
});

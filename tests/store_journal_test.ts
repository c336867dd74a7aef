import { join } from "node:path";
import { assertEquals } from "./fixtures/assert.ts";
import { entriesOf, Journal, journalFiles, replayJournal } from "../lib/store/journal.ts";

async function withCache(fn: (cache: string) => Promise<void>): Promise<void> {
  const cache = await Deno.makeTempDir({ prefix: "latentforge-journal-" });
  try {
    await fn(cache);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
}

Deno.test("the journal replays to the latest record of every key, deletes applied", async () => {
  await withCache(async (cache) => {
    const journal = new Journal(cache);
    await journal.append([
      { key: ["action", "encode", "1"], value: { key: "a" } },
      { key: ["action", "encode", "2"], value: { key: "b" } },
      // Not what a rebuild needs: left out.
      { key: ["failure", "encode", "3"], value: { reason: "x" } },
      { key: ["run", 17], value: { id: 17 } },
    ]);
    await journal.append([
      { key: ["action", "encode", "1"], value: { key: "a2" } },
      { key: ["action", "encode", "2"] },
      { key: ["alias", "md5:00"], value: { digest: "d" } },
    ]);
    const replayed = await replayJournal(cache);
    assertEquals([...replayed.values()], [
      { key: ["action", "encode", "1"], value: { key: "a2" } },
      { key: ["alias", "md5:00"], value: { digest: "d" } },
    ]);
    assertEquals((await journalFiles(join(cache, "journal"))).length, 2);
  });
});

Deno.test("a journal file a power cut left torn is skipped, the others replayed", async () => {
  await withCache(async (cache) => {
    const journal = new Journal(cache);
    await journal.append([{ key: ["action", "t", "1"], value: { key: "a" } }]);
    await journal.append([{ key: ["action", "t", "2"], value: { key: "b" } }]);
    const [, second] = await journalFiles(journal.dir);
    const path = join(journal.dir, second);
    const text = await Deno.readTextFile(path);
    await Deno.writeTextFile(path, text.slice(0, text.length - 7));
    const replayed = await replayJournal(cache);
    assertEquals([...replayed.keys()], [JSON.stringify(["action", "t", "1"])]);
  });
});

Deno.test("compaction replaces the journal with one snapshot of the live records", async () => {
  await withCache(async (cache) => {
    const kv = await Deno.openKv(join(cache, "records.sqlite3"));
    try {
      const journal = new Journal(cache);
      for (let i = 0; i < 3; i++) {
        const value = { key: `k${i}` };
        await journal.append([{ key: ["action", "t", String(i)], value }]);
        await kv.set(["action", "t", String(i)], value);
      }
      await kv.delete(["action", "t", "0"]);
      await kv.set(["lease"], { pid: 1 });
      const { files } = await journal.compact(entriesOf(kv));
      assertEquals(files, 3);
      assertEquals((await journalFiles(journal.dir)).length, 1);
      const replayed = await replayJournal(cache);
      assertEquals([...replayed.values()].map((e) => e.key), [
        ["action", "t", "1"],
        ["action", "t", "2"],
      ]);
    } finally {
      kv.close();
    }
  });
});

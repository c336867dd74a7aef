import { assertEquals } from "./fixtures/assert.ts";
import { RecordCursor } from "../lib/store/record_cursor.ts";
import { compareIds } from "../lib/store/id_order.ts";

/** A KV of its own holding `ids` as action records of task "t" (and 0-2 superseded each). */
async function withKv(ids: string[], use: (kv: Deno.Kv) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "lf_cursor_" });
  const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
  try {
    for (let i = 0; i < ids.length; i += 500) {
      const op = kv.atomic();
      for (const id of ids.slice(i, i + 500)) {
        op.set(["action", "t", id], { id });
        for (let r = 0; r < Number(id) % 3; r++) op.set(["superseded", "t", id, r], { id, r });
      }
      await op.commit();
    }
    await use(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("record cursor: every lookup answers as a point read would, in order or not", async () => {
  // Held: every third number; asked: every number, mostly in order, some late, some far back.
  const held = Array.from({ length: 12_000 }, (_, i) => String(i * 3).padStart(6, "0"));
  await withKv(held, async (kv) => {
    const cursor = new RecordCursor<{ id: string }, { id: string }>({
      kv,
      prefix: ["action", "t"],
    });
    const superseded = new RecordCursor<{ id: string; r: number }, { id: string; r: number }[]>({
      kv,
      prefix: ["superseded", "t"],
      grouped: true,
    });
    const asked: string[] = [];
    for (let i = 0; i < 36_000; i++) {
      asked.push(String(i).padStart(6, "0"));
      if (i % 97 === 0 && i > 64) asked.push(String(i - 50).padStart(6, "0")); // late
      if (i % 5003 === 0 && i > 20_000) asked.push(String(i - 20_000).padStart(6, "0")); // far
    }
    const wrong: string[] = [];
    for (const id of asked) {
      const want = (await kv.get<{ id: string }>(["action", "t", id])).value;
      const got = await cursor.get(id);
      if ((got?.id ?? null) !== (want?.id ?? null)) wrong.push(`action ${id}`);
      const n = want ? Number(id) % 3 : 0;
      const group = await superseded.get(id);
      if ((group?.length ?? 0) !== n) wrong.push(`superseded ${id}: ${group?.length} of ${n}`);
    }
    assertEquals(wrong.slice(0, 5), []);
  });
});

Deno.test("record cursor: dropped items and adapted records; ids compared as KV orders them", async () => {
  const held = ["a", "b", "é", "\u{1F600}", "\uFFFD"];
  assertEquals([...held].sort(compareIds), ["a", "b", "é", "\uFFFD", "\u{1F600}"]);
  await withKv(held, async (kv) => {
    const adapted: string[] = [];
    const cursor = new RecordCursor<{ id: string }, { id: string }>({
      kv,
      prefix: ["action", "t"],
      adapt: (id, rec) => {
        adapted.push(id);
        return { id: rec.id.toUpperCase() };
      },
    });
    const listed: string[] = [];
    for await (const e of kv.list({ prefix: ["action", "t"] })) listed.push(e.key[2] as string);
    assertEquals(listed, [...held].sort(compareIds));
    cursor.delete("b");
    assertEquals((await cursor.get("a"))?.id, "A");
    assertEquals(await cursor.get("b"), undefined);
    assertEquals((await cursor.get("\u{1F600}"))?.id, "\u{1F600}");
    assertEquals(adapted, ["a", "b", "é", "\uFFFD", "\u{1F600}"]);
  });
});

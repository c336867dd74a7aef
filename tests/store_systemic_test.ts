import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { mountTmpfs, tmpfsRequirement } from "./fixtures/tmpfs.ts";
import { testIf } from "./fixtures/skip.ts";
import { freeBytes, systemicFault } from "../lib/store/systemic.ts";

const mounts = await tmpfsRequirement();

async function caught(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected the call to fail");
}

testIf(mounts, {
  name: "a full disk, from a file write or from the record database, is a systemic fault",
  async fn() {
    const fs = await mountTmpfs({ sizeKb: 256 });
    if (typeof fs === "string") throw new Error(fs);
    try {
      const file = join(fs.path, "big.bin");
      const e = await caught(() => Deno.writeFile(file, new Uint8Array(400_000)));
      const fault = systemicFault(e, { cacheDir: fs.path });
      assert(fault, `not classified: ${e}`);
      assertEquals([fault.kind, fault.path], ["disk-full", file]);
      assertMatch(fault.found, /^0 B free of 262\.1 KB$/);
      assertStringIncludes(fault.message, `the disk is full at ${file} (0 B free of 262.1 KB)`);
      assertStringIncludes(fault.message, "deno task gc");
      await Deno.remove(file).catch(() => {});

      // SQLite says it its own way, without a path: the database file is named.
      const kvFile = join(fs.path, "records.sqlite3");
      const kv = await Deno.openKv(kvFile);
      try {
        const full = await caught(async () => {
          for (let i = 0; i < 100; i++) await kv.set(["x", i], "y".repeat(20_000));
        });
        assertStringIncludes(String(full), "database or disk is full");
        const f = systemicFault(full, { cacheDir: fs.path });
        assertEquals([f?.kind, f?.path], ["disk-full", kvFile]);
      } finally {
        kv.close();
      }
      // A write that fails part-way through an open file names no path: the cache is named.
      const handle = await Deno.open(join(fs.path, "part.bin"), { write: true, create: true });
      const partial = await caught(() => handle.write(new Uint8Array(300_000)));
      handle.close();
      assertEquals(systemicFault(partial, { cacheDir: fs.path })?.path, fs.path);
      const space = freeBytes(join(fs.path, "not", "there"));
      assertEquals(space?.total, 262_144);
    } finally {
      await fs.close();
    }
  },
});

testIf(mounts, {
  name: "a read-only filesystem is a systemic fault, naming the path refused",
  async fn() {
    const fs = await mountTmpfs({ sizeKb: 64, readOnly: true });
    if (typeof fs === "string") throw new Error(fs);
    try {
      const e = await caught(() => Deno.mkdir(join(fs.path, "objects")));
      const fault = systemicFault(e, { cacheDir: fs.path });
      assertEquals([fault?.kind, fault?.path], ["read-only", join(fs.path, "objects")]);
      assertStringIncludes(fault!.message, "remount it read-write");
    } finally {
      await fs.close();
    }
  },
});

Deno.test("ordinary errors stay with their item", () => {
  for (
    const e of [
      new Error("expected 32 lowercase hex digits, found 12"),
      new Deno.errors.NotFound("No such file or directory (os error 2): open '/x'"),
      "a string",
    ]
  ) {
    assertEquals(systemicFault(e, { cacheDir: "cache" }), null);
  }
});

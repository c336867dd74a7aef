import { createHash } from "node:crypto";
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertRejects } from "./fixtures/assert.ts";
import { startMirror } from "./fixtures/mirror.ts";
import {
  type CopyKind,
  writeKaggleZip,
  writeLocalFolder,
  writeZip,
} from "./fixtures/local_copy.ts";
import { pythonHas, runPython } from "./fixtures/python.ts";
import { AdoptSources } from "../lib/dataset/adopt.ts";
import type { AdoptItem } from "../lib/dataset/adopt_check.ts";
import { AdoptSourceError } from "../lib/dataset/adopt_listing.ts";
import {
  formatReconciliation,
  type ItemOutcome,
  reconcile,
} from "../lib/dataset/reconciliation.ts";
import { ZipArchive, ZipArchiveError } from "../lib/dataset/zip_archive.ts";
import { HashPool } from "../lib/net/hash_pool.ts";

type SpecRecord = {
  image: {
    file_path: string;
    file_size: number;
    file_md5: string;
    pixel_size: [number, number];
    pixel_md5: string;
  };
};

function specItems(specBytes: Uint8Array): AdoptItem[] {
  const spec = JSON.parse(new TextDecoder().decode(specBytes)) as Record<string, SpecRecord>;
  return Object.entries(spec).map(([id, r]) => ({
    id,
    path: r.image.file_path,
    size: r.image.file_size,
    md5: r.image.file_md5,
    pixel_size: r.image.pixel_size,
    pixel_md5: r.image.pixel_md5,
  }));
}

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Adopts every item read-only (as a plan does) and returns the outcomes. */
async function plan(sources: AdoptSources, items: AdoptItem[], hashPool?: HashPool) {
  const outcomes = new Map<string, ItemOutcome>();
  for (const item of items) {
    const got = await sources.adopt(item, { hashPool });
    if (got.adopted) {
      outcomes.set(item.id, { adopted: got.adopted.by, file: got.adopted.verdict.file });
    } else outcomes.set(item.id, { rejected: got.rejected });
  }
  return outcomes;
}

Deno.test("a Kaggle-like zip: every file classified exactly (bytes, pixels, rejected with the reason, missing, extra)", async () => {
  const mirror = await startMirror({ count: 40, imageSize: 32, imageKind: "noise", seed: 7 });
  const dir = await Deno.makeTempDir({ prefix: "lf_adopt_" });
  const hashPool = new HashPool();
  try {
    const zipPath = join(dir, "ffhq-kaggle.zip");
    const copy = await writeKaggleZip(mirror, zipPath, {
      shares: { absent: 0.1, reencoded: 0.1, resized: 0.1, truncated: 0.1, jpeg: 0.05 },
      extras: 3,
      seed: 7,
    });
    const items = specItems(mirror.specBytes);
    const sources = await AdoptSources.open([zipPath]);
    try {
      assertEquals(sources.files.length, copy.files.length);
      const r = reconcile({
        items,
        sources,
        outcomes: await plan(sources, items, hashPool),
        planned: true,
      });
      const want = (kind: CopyKind) =>
        [...copy.kinds].filter(([, k]) => k === kind).map(([id]) => id).sort();
      const sorted = (ids: string[]) => [...ids].sort();
      assertEquals(sorted(r.adopted_bytes), want("bytes"));
      assertEquals(sorted(r.adopted_pixels.map((p) => p.id)), want("reencoded"));
      assertEquals(sorted(r.missing), want("absent"));
      assertEquals(sorted(r.extra), copy.extras.map((e) => `${zipPath}!${e}`).sort());
      assertEquals(r.stored_before, []);
      assertEquals(r.per_source, [{
        source: zipPath,
        files: copy.files.length,
        adopted: want("bytes").length + want("reencoded").length,
      }]);
      const reasons = new Map(r.rejected.map((x) => [x.id, x.reason]));
      assertEquals(
        sorted([...reasons.keys()]),
        sorted([...want("resized"), ...want("truncated"), ...want("jpeg")]),
      );
      for (const id of want("resized")) assertEquals(reasons.get(id), "16×16, spec says 32×32");
      for (const id of want("truncated")) {
        assertMatch(
          reasons.get(id)!,
          /^truncated or damaged: cannot be decoded \(\d+ bytes, spec says \d+\)$/,
        );
      }
      for (const id of want("jpeg")) {
        assertEquals(reasons.get(id), "a JPEG: its pixels differ from the spec's (lossy copy)");
      }
      // Every rejected file is named as the user finds it: the archive and the entry.
      for (const x of r.rejected) assertEquals(x.file, `${zipPath}!${copy.names.get(x.id)}`);
      assertEquals(r.counts, {
        adopted_bytes: want("bytes").length,
        adopted_pixels: want("reencoded").length,
        rejected: want("resized").length + want("truncated").length + want("jpeg").length,
        missing: want("absent").length,
        extra: 3,
        stored_before: 0,
      });
      // With --limit, the files of items beyond it are not extra.
      const first = items.slice(0, 5);
      const limited = reconcile({
        items: first,
        spec: items,
        sources,
        outcomes: await plan(sources, first),
        planned: true,
      });
      assertEquals(limited.items, 5);
      assertEquals(sorted(limited.extra), sorted(r.extra));
      const text = formatReconciliation(r);
      assertMatch(text, new RegExp(`adopted by pixels\\s+${want("reencoded").length}`));
      assertMatch(text, /rejected\s+\d+\s+\d+ with another pixel size, \d+ truncated, \d+ JPEG/);
    } finally {
      sources.close();
    }
  } finally {
    hashPool.close();
    await mirror.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("adopting copies exactly the verified bytes out of folders and zips, and never touches the copies", async () => {
  const mirror = await startMirror({ count: 12, imageSize: 24, imageKind: "noise", seed: 3 });
  const dir = await Deno.makeTempDir({ prefix: "lf_adopt_" });
  try {
    // A half-finished download_ffhq.py tree where item 2 is truncated, and a flat zip holding a
    // good copy of it: the tree's exact path is tried first, the zip's file next.
    const tree = join(dir, "ffhq");
    const folder = await writeLocalFolder(mirror, tree, { extras: 0, seed: 5 });
    const zipPath = join(dir, "copy.zip");
    await writeKaggleZip(mirror, zipPath, { extras: 0, seed: 5 });
    const broken = join(tree, folder.names.get("2")!);
    const good = await Deno.readFile(broken);
    await Deno.writeFile(broken, good.slice(0, 40));
    await Deno.chmod(tree, 0o555);
    const before = await snapshot(dir);

    const items = specItems(mirror.specBytes);
    const sources = await AdoptSources.open([tree, zipPath]);
    const kept: string[] = [];
    try {
      assertEquals(sources.candidates(items[2]).map((f) => f.label), [
        broken,
        `${zipPath}!00002.png`,
      ]);
      for (const item of items) {
        const keep = join(dir, `kept-${item.id}`);
        kept.push(keep);
        const got = await sources.adopt(item, { tempPath: () => keep });
        assert(got.adopted, `item ${item.id} was not adopted: ${JSON.stringify(got.rejected)}`);
        assertEquals(got.adopted.by, "bytes");
        const bytes = await Deno.readFile(got.adopted.kept!);
        assertEquals(md5(bytes), item.md5);
        assertEquals(got.adopted.sha256, sha256(bytes));
        if (item.id === "2") {
          assertEquals(got.adopted.verdict.file, `${zipPath}!00002.png`);
          assertEquals(got.rejected.map((x) => x.file), [broken]);
        } else {
          assertEquals(got.adopted.verdict.file, join(tree, folder.names.get(item.id)!));
          assertEquals(got.rejected, []);
        }
      }
    } finally {
      sources.close();
      await Deno.chmod(tree, 0o755);
    }
    for (const k of kept) await Deno.remove(k);
    // A store that cannot be written is not the copy's fault: it is an error, not a rejection.
    for (const source of [tree, zipPath]) {
      const again = await AdoptSources.open([source]);
      try {
        const nowhere = join(dir, "no-such-dir", "kept");
        const e = await assertRejects(() => again.adopt(items[0], { tempPath: () => nowhere }));
        assert(e instanceof Deno.errors.NotFound, String(e));
      } finally {
        again.close();
      }
    }
    // The copies were read only: same files, same bytes, same modification times.
    assertEquals(await snapshot(dir), before);
  } finally {
    await mirror.close();
    await Deno.chmod(join(dir, "ffhq"), 0o755).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else {
        const info = await Deno.stat(p);
        out.push(`${p} ${info.size} ${info.mtime?.getTime()} ${md5(await Deno.readFile(p))}`);
      }
    }
  };
  await walk(dir);
  return out.sort();
}

Deno.test("ZIP64 archives are listed and streamed, stored and deflated entries alike", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lf_zip64_" });
  try {
    const files = Array.from({ length: 6 }, (_, i) => ({
      name: `images/${String(i).padStart(5, "0")}.bin`,
      bytes: Uint8Array.from(
        { length: 70_000 + i * 1_000_003 % 300_000 },
        (_, k) => (k * (i + 7)) & 0xff,
      ),
    }));
    const path = join(dir, "zip64.zip");
    await writeZip(path, files, { zip64: true, compress: true });
    const stored = join(dir, "stored64.zip");
    await writeZip(stored, files.slice(0, 2), { zip64: true, compress: false });
    const raw = await Deno.readFile(path);
    // A ZIP64 end-of-central-directory record (PK\x06\x06) and its locator (PK\x06\x07).
    const has = (sig: number[]) => raw.some((_, i) => sig.every((b, k) => raw[i + k] === b));
    assert(has([0x50, 0x4b, 0x06, 0x06]) && has([0x50, 0x4b, 0x06, 0x07]), "not a ZIP64 archive");
    if (pythonHas("zipfile")) {
      // Python's zipfile, a real reader, agrees on the names and finds no bad CRC.
      const out = runPython(
        "import sys, zipfile, json\nz = zipfile.ZipFile(sys.argv[1])\n" +
          "print(json.dumps([z.testzip(), [i.filename for i in z.infolist()]]))",
        [path],
      );
      assertEquals(JSON.parse(out), [null, files.map((f) => f.name)]);
    }
    for (const [archive, expected] of [[path, files], [stored, files.slice(0, 2)]] as const) {
      const zip = await ZipArchive.open(archive);
      try {
        assertEquals(
          zip.entries.map((e) => [e.name, e.size]),
          expected.map((f) => [f.name, f.bytes.length]),
        );
        for (const [i, e] of zip.entries.entries()) {
          assertEquals(e.method, archive === path ? 8 : 0);
          assertEquals(sha256(await zip.bytes(e)), sha256(expected[i].bytes));
        }
      } finally {
        zip.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("damaged archives and sources fail with the file and what is wrong; damaged entries are rejected", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lf_zipbad_" });
  try {
    const files = [{
      name: "00000.png",
      bytes: new Uint8Array(5000).map((_, i) => (i * 31) & 0xff),
    }];
    const good = join(dir, "good.zip");
    await writeZip(good, files, { compress: false });
    const bytes = await Deno.readFile(good);

    const cut = join(dir, "cut.zip");
    await Deno.writeFile(cut, bytes.slice(0, bytes.length - 30));
    const e1 = await assertRejects(() => AdoptSources.open([dir + "/absent", cut]));
    assert(e1 instanceof AdoptSourceError);
    assertEquals(e1.message, `dataset.adopt[0]: ${dir}/absent: no such folder or .zip archive`);
    const e2 = await assertRejects(() => AdoptSources.open([cut]));
    assertEquals(
      e2.message,
      `dataset.adopt[0]: ${cut}: not a readable zip archive (no end-of-central-directory record: not a zip archive, or cut short)`,
    );
    await assertRejects(() => ZipArchive.open(join(dir, "nothing.zip")), "no such file");

    // An entry compressed with bzip2 (method 12) cannot be read: rejected with that reason.
    const bzip = join(dir, "bzip.zip");
    const patched = bytes.slice();
    for (let i = 0; i + 4 < patched.length; i++) {
      const sig = patched[i] | patched[i + 1] << 8 | patched[i + 2] << 16 | patched[i + 3] << 24;
      if (sig === 0x04034b50) patched[i + 8] = 12;
      if (sig === 0x02014b50) patched[i + 10] = 12;
    }
    await Deno.writeFile(bzip, patched);
    const item: AdoptItem = {
      id: "0",
      path: "images1024x1024/00000/00000.png",
      size: 5000,
      md5: md5(files[0].bytes),
      pixel_size: [8, 8],
      pixel_md5: "0".repeat(32),
    };
    const sources = await AdoptSources.open([bzip]);
    try {
      const got = await sources.adopt(item);
      assertEquals(got.adopted, null);
      assertEquals(got.rejected, [{
        file: `${bzip}!00000.png`,
        reason:
          "the entry is compressed with method 12 (bzip2), which cannot be read (only stored and deflated entries can)",
      }]);
    } finally {
      sources.close();
    }

    // A deflated entry whose data was damaged on disk is never adopted.
    const deflated = join(dir, "deflated.zip");
    await writeZip(deflated, files, { compress: true });
    const d = await Deno.readFile(deflated);
    d[60] ^= 0xff;
    await Deno.writeFile(deflated, d);
    const s2 = await AdoptSources.open([deflated]);
    try {
      const got = await s2.adopt(item);
      assertEquals(got.adopted, null);
      assertEquals(got.rejected.length, 1);
      assertMatch(got.rejected[0].reason, /damaged/);
    } finally {
      s2.close();
    }
    const zip = await ZipArchive.open(deflated);
    try {
      await assertRejects(() => zip.bytes(zip.entries[0])).then((e) =>
        assert(e instanceof ZipArchiveError, String(e))
      );
    } finally {
      zip.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

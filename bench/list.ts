/**
 * `deno task bench list [--files N] [--folders N] [--rounds N]`: listing a large folder tree and
 * its freshness check, against `find -L <root> -type f -printf '%s %T@\n'` over the same tree in
 * the same run (warm cache, rounds alternating, medians):
 *
 * - **freshness check**: what a plan calls to see whether a folder dataset changed
 *   (`folderFingerprint`: every file's size, time and inode, no read), through the C library and
 *   through Deno's own calls (the fallback where FFI is not allowed);
 * - **relisting**: what a run does after one file changed (`ingestFolder` from the previous
 *   listing's digest memo: the walk, one file read, every other digest reused, the item index
 *   built);
 * - **first listing** (once): every file read and hashed.
 *
 * The tree — by default 1,300,000 files of 1 KB in 1,000 folders, 5.3 GB on a 4 KB-block file
 * system — is written once to `bench/.work/list/` by a small writer and reused.
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { positiveInt } from "./args.ts";
import { median } from "./timing.ts";
import { folderFingerprint, ingestFolder } from "../lib/dataset/folder_spec.ts";
import { DigestMemo } from "../lib/dataset/digest_memo.ts";
import { WalkDigests } from "../lib/dataset/walk_digests.ts";
import { loadLibcDir } from "../lib/dataset/libc_dir.ts";

const files = positiveInt("files", "1300000");
const folders = positiveInt("folders", "1000");
const rounds = positiveInt("rounds", "5");
const work = join(fileURLToPath(new URL(".", import.meta.url)), ".work", "list");
const root = join(work, `tree-${files}-${folders}`);
const FILE_BYTES = 1024;

/** Writes the tree unless a complete one is there (its marker, a hidden file, says so). */
async function ensureTree(): Promise<void> {
  const marker = join(root, ".complete");
  if (await Deno.stat(marker).then(() => true, () => false)) return;
  await Deno.mkdir(work, { recursive: true });
  const { bavail, bsize } = statfsSync(work);
  const needed = files * 4096 * 1.2;
  if (bavail * bsize < needed) {
    throw new Error(
      `${work}: the tree needs about ${(needed / 1e9).toFixed(1)} GB, the disk has ` +
        `${(bavail * bsize / 1e9).toFixed(1)} GB free`,
    );
  }
  console.log(`writing ${files} files of ${FILE_BYTES} bytes in ${folders} folders to ${root}…`);
  const started = performance.now();
  const bytes = new Uint8Array(FILE_BYTES);
  const view = new DataView(bytes.buffer);
  const perFolder = Math.ceil(files / folders);
  for (let f = 0; f < folders; f++) {
    const dir = join(root, `${String(f).padStart(4, "0")}`);
    Deno.mkdirSync(dir, { recursive: true });
    for (let k = f * perFolder; k < Math.min(files, (f + 1) * perFolder); k++) {
      // Every file different: its number in the first bytes.
      view.setUint32(0, k);
      Deno.writeFileSync(join(dir, `${String(k).padStart(8, "0")}.jpg`), bytes);
    }
  }
  await Deno.writeTextFile(marker, JSON.stringify({ files, folders, bytes: FILE_BYTES }));
  console.log(`written in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

async function find(): Promise<void> {
  const out = await new Deno.Command("find", {
    args: ["-L", root, "-type", "f", "-printf", "%s %T@\n"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(`find failed: ${new TextDecoder().decode(out.stderr)}`);
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

await ensureTree();
if (loadLibcDir() === undefined) {
  console.log("note: the C library's getdents64/statx cannot be used here; both rows use Deno");
}
console.log(`load average before: ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);

// Warm the page cache and the dentry cache, and take the memo a relisting starts from.
await find();
const firstDigests = new WalkDigests(DigestMemo.empty());
const firstListing = await seconds(() => ingestFolder(root, { digests: firstDigests }));
let memo = firstDigests.memo();
console.log(
  `first listing (every file read and hashed): ${firstListing.toFixed(1)} s, ` +
    `${firstDigests.counts.hashed} files read`,
);

const times: Record<string, number[]> = { find: [], check: [], checkDeno: [], relist: [] };
const touched = join(root, "0000", "00000000.jpg");
for (let r = 0; r < rounds; r++) {
  times.find.push(await seconds(find));
  times.check.push(await seconds(() => folderFingerprint(root)));
  times.checkDeno.push(await seconds(() => folderFingerprint(root, { reader: "deno" })));
  // One file changed since the last listing: a time of its own, well in the past.
  const when = new Date(Date.UTC(2020, 0, 1 + r));
  await Deno.utime(touched, when, when);
  const digests = new WalkDigests(DigestMemo.decode(memo));
  times.relist.push(
    await seconds(async () => {
      const index = await ingestFolder(root, { digests });
      if (index.items.length !== files) throw new Error(`listed ${index.items.length} files`);
    }),
  );
  if (digests.counts.hashed !== 1) throw new Error(`relisting read ${digests.counts.hashed} files`);
  memo = digests.memo();
}

const ref = median(times.find);
const rows: [string, number[]][] = [
  ["find -L … -printf '%s %T@\\n'", times.find],
  ["freshness check (folderFingerprint, libc)", times.check],
  ["freshness check (folderFingerprint, Deno)", times.checkDeno],
  ["relisting, 1 file changed (ingestFolder)", times.relist],
];
console.log(`\n${files} files in ${folders} folders, ${rounds} rounds, warm cache`);
console.log(`${"".padEnd(44)} median s  min s   max s   × find`);
for (const [label, values] of rows) {
  const med = median(values);
  console.log(
    `${label.padEnd(44)} ${med.toFixed(3).padStart(8)} ${
      Math.min(...values).toFixed(3).padStart(6)
    } ${Math.max(...values).toFixed(3).padStart(7)} ${(med / ref).toFixed(2).padStart(7)}`,
  );
}
console.log(`load average after: ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`);

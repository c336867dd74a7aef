/**
 * Lays a set of stored objects out as a folder users read (e.g. `out/demo/`), without ever
 * losing a file that is not latentforge's:
 *
 * - Only a folder latentforge created (it holds a `.latentforge.json` marker naming every file
 *   it wrote, and the cache and config that wrote them) is replaced; anything else is refused
 *   (see out_dir.ts, which says so before any work starts too).
 * - A new dataset is written aside (`<dir>.tmp-<owner>`), fsynced, then swapped in by rename,
 *   so a reader never sees half a dataset. Publishing the same objects again checks each file's
 *   size and modification time against the marker (a few `stat`s, whatever the dataset's size)
 *   and rewrites only the files that differ; `deep` also re-hashes them.
 * - Every byte copied out of the store is checked against its digest (a corrupt object is
 *   quarantined and never published).
 * - A partial dataset (a `--limit` run, a run in which every item failed) never replaces a
 *   complete one: it goes beside it, to `<dir>.partial`, and the caller is told where.
 * - Two runs publishing to one folder (even from different caches) take turns on a lock of the
 *   parent folder (see publish_lock.ts); a half-written copy is removed only once its writer is
 *   gone.
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { lstatOrNull, removeIfPresent } from "../base/fs.ts";
import { fsyncDir, hashFile, type ObjectStore, writeFileAtomic } from "./objects.ts";
import { filesDigest, type FileStat, MARKER, type OutMarker, readMarker } from "./out_marker.ts";
import { checkOutDir, checkOutDirLocked } from "./out_dir.ts";
import { recordPublished } from "./published_list.ts";
import {
  makeHeldAside,
  ownerTag,
  removeInnerLeftovers,
  removeLeftovers,
  withParentLock,
} from "./publish_lock.ts";

/** Options of {@link publishDirectory}. */
export interface PublishOptions {
  /** The cache the objects come from (recorded in the marker). Default: the store's root. */
  cacheDir?: string;
  /** The config file that shaped the dataset (recorded in the marker). Default: not recorded. */
  configFile?: string;
  /**
   * Why this dataset is partial (e.g. `"--limit 5"`), or undefined for a complete one. A
   * partial dataset never replaces a complete one: it is published to {@link partialDir}.
   */
  partial?: string;
  /** Images in the dataset, recorded in the marker. Default: not recorded. */
  images?: number;
  /** Re-hash every published file against its digest, not only size and mtime. Default false. */
  deep?: boolean;
}

/** What {@link publishDirectory} did. */
export interface PublishResult {
  /** The folder the dataset is in (the requested one, or its `.partial` sibling). */
  dir: string;
  /** `created`/`replaced` a folder, `repaired` some of its files, or left it `unchanged`. */
  action: "created" | "replaced" | "repaired" | "unchanged";
  /** Files rewritten because they differed from the marker (missing, resized, edited). */
  repaired: string[];
  /** Set when a partial dataset went beside a complete one: the complete one's folder. */
  keptComplete?: string;
}

/** Where a partial dataset goes when `dir` holds a complete one. */
export function partialDir(dir: string): string {
  return `${resolve(dir)}.partial`;
}

/**
 * Publishes `objects` (relative path → digest) as folder `dir`, as the module describes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "./objects.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const store = new ObjectStore(`${dir}/cache`);
 * const digest = await store.put(new TextEncoder().encode("latents"));
 * const first = await publishDirectory(store, { "train/latents.npz": digest }, `${dir}/out`);
 * const again = await publishDirectory(store, { "train/latents.npz": digest }, `${dir}/out`);
 * assert.deepEqual([first.action, again.action], ["created", "unchanged"]);
 * assert.equal(await Deno.readTextFile(`${dir}/out/train/latents.npz`), "latents");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function publishDirectory(
  store: ObjectStore,
  objects: Record<string, string>,
  dir: string,
  { cacheDir = store.root, configFile, partial, images, deep = false }: PublishOptions = {},
): Promise<PublishResult> {
  for (const rel of Object.keys(objects)) checkRelative(rel);
  const digest = filesDigest(objects);
  const requested = resolve(dir);
  let target = requested;
  let keptComplete: string | undefined;
  if (partial !== undefined) {
    const there = await readMarker(requested);
    if (there && there !== "unreadable" && there.complete !== false && there.digest !== digest) {
      target = partialDir(requested);
      keptComplete = requested;
    }
  }
  await checkOutDir(target);
  const fields: Omit<OutMarker, "stats"> = {
    digest,
    files: objects,
    cache: resolve(cacheDir),
    ...(configFile === undefined ? {} : { config: resolve(configFile) }),
    complete: partial === undefined,
    ...(partial === undefined ? {} : { partial }),
    ...(images === undefined ? {} : { images }),
  };
  const current = await readMarker(target);
  if (current && current !== "unreadable" && current.digest === digest && current.stats) {
    const differing = await differingFiles(target, current, deep);
    if (differing.length === 0) {
      await recordPublished(cacheDir, target);
      return { dir: target, action: "unchanged", repaired: [], keptComplete };
    }
    const repaired = await withParentLock(target, async () => {
      // Another run may have swapped the folder meanwhile: repair what is there now.
      const now = await readMarker(target);
      if (!now || now === "unreadable" || now.digest !== digest || !now.stats) return null;
      await checkOutDirLocked(target);
      await removeInnerLeftovers(target);
      const again = await differingFiles(target, now, deep);
      await repairFiles(store, target, now, again);
      return again;
    });
    if (repaired !== null) {
      await recordPublished(cacheDir, target);
      return { dir: target, action: "repaired", repaired, keptComplete };
    }
  }
  const existed = (await lstatOrNull(target)) !== null;
  await replaceFolder(store, target, fields);
  await recordPublished(cacheDir, target);
  return {
    dir: target,
    action: existed ? "replaced" : "created",
    repaired: [],
    keptComplete,
  };
}

/**
 * The folder a dataset for `dir` is published to: `dir` itself, or — for a partial dataset
 * while `dir` holds a complete one — its `.partial` sibling.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "./objects.ts";
 *
 * const dir = await Deno.makeTempDir();
 * assert.equal(await publishTarget(`${dir}/out`, { partial: true }), `${dir}/out`); // nothing there
 * const store = new ObjectStore(`${dir}/cache`);
 * const digest = await store.put(new TextEncoder().encode("{}"));
 * await publishDirectory(store, { "index.json": digest }, `${dir}/out`);
 * // A complete dataset is there now: a partial one goes beside it.
 * assert.equal(await publishTarget(`${dir}/out`, { partial: true }), `${dir}/out.partial`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function publishTarget(
  dir: string,
  { partial = false }: { partial?: boolean } = {},
): Promise<string> {
  const main = resolve(dir);
  if (!partial) return main;
  const there = await readMarker(main);
  return there && there !== "unreadable" && there.complete !== false ? partialDir(main) : main;
}

/** What {@link verifyPublished} found in one folder. */
export interface PublishedCheck {
  dir: string;
  /** Files rewritten because their bytes differed from what was published. */
  repaired: string[];
  /** Why the folder was not checked (gone, or published from another cache). */
  skipped?: string;
}

/**
 * Re-hashes every file of a folder this cache published and rewrites those that differ from
 * their objects (a corrupt object is quarantined instead, and the error says so).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "./objects.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const store = new ObjectStore(`${dir}/cache`);
 * const digest = await store.put(new TextEncoder().encode("latents"));
 * await publishDirectory(store, { "latents.npz": digest }, `${dir}/out`);
 * await Deno.writeTextFile(`${dir}/out/latents.npz`, "LATENTS"); // edited: same size, other bytes
 * const r = await verifyPublished(store, `${dir}/out`);
 * assert.deepEqual(r.repaired, ["latents.npz"]);
 * assert.equal(await Deno.readTextFile(`${dir}/out/latents.npz`), "latents");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function verifyPublished(store: ObjectStore, dir: string): Promise<PublishedCheck> {
  const marker = await readMarker(dir);
  if (marker === null) return { dir, repaired: [], skipped: "no longer there" };
  if (marker === "unreadable") return { dir, repaired: [], skipped: `its ${MARKER} is unreadable` };
  if (marker.cache !== undefined && resolve(marker.cache) !== resolve(store.root)) {
    return { dir, repaired: [], skipped: `published since from another cache (${marker.cache})` };
  }
  const r = await publishDirectory(store, marker.files, dir, {
    cacheDir: store.root,
    configFile: marker.config,
    partial: marker.complete === false ? marker.partial ?? "partial" : undefined,
    images: marker.images,
    deep: true,
  });
  return { dir, repaired: r.action === "replaced" ? Object.keys(marker.files) : r.repaired };
}

async function replaceFolder(
  store: ObjectStore,
  target: string,
  fields: Omit<OutMarker, "stats">,
): Promise<void> {
  const parent = dirname(target);
  await Deno.mkdir(parent, { recursive: true });
  const aside = `${target}.tmp-${ownerTag()}`;
  // Locked from its making until it is swapped in or removed: another publisher sees it is in
  // use.
  const hold = await makeHeldAside(target, aside);
  try {
    const dirs = new Set<string>([aside]);
    const stats: Record<string, FileStat> = {};
    for (const [rel, d] of Object.entries(fields.files).sort()) {
      const path = join(aside, rel);
      await Deno.mkdir(dirname(path), { recursive: true });
      dirs.add(dirname(path));
      await store.copyOut(d, path);
      stats[rel] = await statOf(path);
    }
    await writeMarker(aside, { ...fields, stats });
    for (const d of dirs) await fsyncDir(d);
    await withParentLock(target, async () => {
      await removeLeftovers(parent, basename(target));
      // Checked again under the lock: files may have appeared since the run started.
      await checkOutDirLocked(target);
      const old = `${target}.old-${ownerTag()}`;
      const exists = (await lstatOrNull(target)) !== null;
      if (exists) await Deno.rename(target, old);
      await Deno.rename(aside, target);
      await fsyncDir(parent);
      // Under the lock, so an `.old-` folder seen by another publisher is always a leftover.
      if (exists) await Deno.remove(old, { recursive: true });
    });
  } catch (e) {
    // Already renamed into place, or never made: then nothing of ours is left aside.
    await removeIfPresent(aside, { recursive: true });
    throw e;
  } finally {
    hold.close();
  }
}

async function repairFiles(
  store: ObjectStore,
  target: string,
  marker: OutMarker,
  rels: string[],
): Promise<void> {
  const stats = { ...marker.stats };
  const dirs = new Set<string>();
  for (const rel of rels) {
    const path = join(target, rel);
    await Deno.mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.tmp-${ownerTag()}`;
    try {
      await store.copyOut(marker.files[rel], tmp);
      await Deno.rename(tmp, path);
    } catch (e) {
      // copyOut removes its file itself on a digest mismatch.
      await removeIfPresent(tmp);
      throw e;
    }
    dirs.add(dirname(path));
    stats[rel] = await statOf(path);
  }
  for (const d of dirs) await fsyncDir(d);
  await writeMarker(target, { ...marker, stats });
}

/** Files whose size or mtime (or, `deep`, digest) differ from the marker, or that are gone. */
async function differingFiles(target: string, marker: OutMarker, deep: boolean) {
  const out: string[] = [];
  for (const [rel, digest] of Object.entries(marker.files).sort()) {
    const path = join(target, rel);
    const info = await lstatOrNull(path);
    const want = marker.stats?.[rel];
    if (
      !info || !info.isFile || !want || info.size !== want.size ||
      (info.mtime?.getTime() ?? -1) !== want.mtimeMs ||
      (deep && await hashFile(path) !== digest)
    ) out.push(rel);
  }
  return out;
}

async function writeMarker(dir: string, marker: OutMarker): Promise<void> {
  const text = JSON.stringify({ ...marker, written: new Date().toISOString() }, null, 1);
  await writeFileAtomic(join(dir, MARKER), new TextEncoder().encode(text));
}

async function statOf(path: string): Promise<FileStat> {
  const info = await Deno.stat(path);
  return { size: info.size, mtimeMs: info.mtime?.getTime() ?? -1 };
}

function checkRelative(rel: string): void {
  if (rel.split("/").some((p) => p === ".." || p === "" || p === ".") || rel === MARKER) {
    throw new Error(
      `cannot publish ${JSON.stringify(rel)}: expected a relative path inside the folder`,
    );
  }
}

/**
 * Lays a set of stored objects out as a folder users read (e.g. `out/demo/`), without ever
 * losing a file that is not latentforge's:
 *
 * - Only a folder latentforge created (it holds a `.latentforge.json` marker naming every file
 *   it wrote, and the cache and config that wrote them) is replaced. An existing non-empty
 *   folder without one, or with files the marker does not name, is refused with
 *   {@link OutDirError} — {@link checkOutDir} says so before any work starts.
 * - A new dataset is written aside (`<dir>.tmp-<owner>`), fsynced, then swapped in by rename,
 *   so a reader never sees half a dataset. Publishing the same objects again checks each file's
 *   size and modification time against the marker (a few `stat`s, whatever the dataset's size)
 *   and rewrites only the files that differ; `deep` also re-hashes them.
 * - Every byte copied out of the store is checked against its digest (a corrupt object is
 *   quarantined and never published).
 * - A partial dataset (a `--limit` run, a run in which every item failed) never replaces a
 *   complete one: it goes beside it, to `<dir>.partial`, and the caller is told where.
 * - Two runs publishing to one folder (even from different caches) take turns on an advisory
 *   lock (flock) of the parent folder for the swap and for repairs. A copy being written aside
 *   is locked by its writer until it is swapped in, so it is removed as a leftover only once
 *   its writer is gone (the system drops the lock when a process exits, however it exits).
 *
 * @module
 */
import { basename, dirname, join, relative, resolve } from "node:path";
import { createHash } from "node:crypto";
import { fsyncDir, type ObjectStore, writeFileAtomic } from "./objects.ts";
import { filesDigest, type FileStat, MARKER, type OutMarker, readMarker } from "./out_marker.ts";

/** Raised when the output folder holds files latentforge did not write. */
export class OutDirError extends Error {
  override readonly name = "OutDirError";
  /** The folder that was refused. */
  readonly dir: string;
  constructor(message: string, dir: string) {
    super(message);
    this.dir = dir;
  }
}

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
 * Refuses (with {@link OutDirError}) an output folder latentforge may not replace: an
 * existing file, a non-empty folder without a marker, or a marked folder holding files its
 * marker does not name. Called before any work, and again at publishing.
 *
 * @example
 * ```ts
 * await checkOutDir("out/demo"); // throws OutDirError if it holds someone else's files
 * ```
 */
export async function checkOutDir(dir: string): Promise<void> {
  const target = resolve(dir);
  if ((await lstatOrNull(target)) === null) return;
  // Under the lock: a publish swapping the folder in is never caught half-way.
  await withParentLock(target, () => checkLocked(target));
}

/** {@link checkOutDir}, for a caller holding the parent's lock. */
async function checkLocked(target: string): Promise<void> {
  const info = await lstatOrNull(target);
  if (info === null) return;
  if (!info.isDirectory) {
    throw new OutDirError(
      `package.out_dir ${target} is ${info.isSymlink ? "a symbolic link" : "a file"}, ` +
        `expected a folder latentforge creates: choose a new or empty folder`,
      target,
    );
  }
  const marker = await readMarker(target);
  const foreign = await foreignEntries(target, marker === "unreadable" ? null : marker);
  if (foreign.length === 0) return;
  const shown = foreign.slice(0, 5).join(", ") + (foreign.length > 5 ? ", …" : "");
  const count = `${foreign.length} entr${foreign.length === 1 ? "y" : "ies"}`;
  const why = marker === null
    ? `holds ${count} (${shown}) and no ${MARKER}, so latentforge did not create it`
    : marker === "unreadable"
    ? `holds a ${MARKER} latentforge cannot read and ${count} (${shown})`
    : `holds ${count} latentforge did not write (${shown})`;
  throw new OutDirError(
    `package.out_dir ${target} ${why}; latentforge replaces only folders it created and ` +
      `never deletes other files: choose a new or empty folder for package.out_dir, or move ` +
      `those files elsewhere`,
    target,
  );
}

/**
 * Publishes `objects` (relative path → digest) as folder `dir`, as the module describes.
 *
 * @example
 * ```ts
 * import { ObjectStore } from "./objects.ts";
 *
 * const store = new ObjectStore("cache");
 * const digest = await store.put(new TextEncoder().encode("latents"));
 * const r = await publishDirectory(store, { "train/latents.npz": digest }, "out/demo");
 * console.log(r.action, r.dir);
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
      await checkLocked(target);
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
 * const dir = await publishTarget("out/demo", { partial: true });
 * console.log(`the report is at ${dir}/report.html`);
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

/** The list of folders a cache published to, so `verify` can check them. */
const PUBLISHED = "published.json";

/**
 * The folders a cache has published to (from `<cache>/published.json`), whether or not they
 * are still there.
 *
 * @example
 * ```ts
 * for (const dir of await publishedFolders("cache")) console.log(dir);
 * ```
 */
export async function publishedFolders(cacheDir: string): Promise<string[]> {
  try {
    const list = JSON.parse(await Deno.readTextFile(join(cacheDir, PUBLISHED)));
    return Array.isArray(list) ? list.filter((d) => typeof d === "string") : [];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return [];
    throw e;
  }
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
 * import { ObjectStore } from "./objects.ts";
 *
 * const r = await verifyPublished(new ObjectStore("cache"), "out/demo");
 * console.log(r.repaired);
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

async function recordPublished(cacheDir: string, dir: string): Promise<void> {
  const list = await publishedFolders(cacheDir);
  if (list.includes(dir)) return;
  // Written in the cache's tmp/, whose leftovers gc removes, then renamed into place.
  await Deno.mkdir(join(cacheDir, "tmp"), { recursive: true });
  const path = join(cacheDir, PUBLISHED);
  const tmp = join(cacheDir, "tmp", `${PUBLISHED}.${ownerTag()}`);
  await Deno.writeTextFile(tmp, JSON.stringify([...list, dir].sort(), null, 1));
  await Deno.rename(tmp, path);
}

async function replaceFolder(
  store: ObjectStore,
  target: string,
  fields: Omit<OutMarker, "stats">,
): Promise<void> {
  const parent = dirname(target);
  await Deno.mkdir(parent, { recursive: true });
  const aside = `${target}.tmp-${ownerTag()}`;
  // Locked from its making (under the parent's lock, where leftovers are judged) until it is
  // swapped in or removed: another publisher sees it is in use.
  const hold = await withParentLock(target, async () => {
    await Deno.mkdir(aside);
    const handle = await Deno.open(aside, { read: true });
    await handle.lock(true);
    return handle;
  });
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
      await checkLocked(target);
      const old = `${target}.old-${ownerTag()}`;
      const exists = (await lstatOrNull(target)) !== null;
      if (exists) await Deno.rename(target, old);
      await Deno.rename(aside, target);
      await fsyncDir(parent);
      // Under the lock, so an `.old-` folder seen by another publisher is always a leftover.
      if (exists) await Deno.remove(old, { recursive: true });
    });
  } catch (e) {
    await Deno.remove(aside, { recursive: true }).catch(() => {
      // Already renamed into place, or never made: nothing of ours is left aside.
    });
    throw e;
  } finally {
    hold.close();
  }
}

/** A unique suffix naming the writing process: `<pid>-<random>`. */
function ownerTag(): string {
  return `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
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
      await Deno.remove(tmp).catch(() => {
        // copyOut removes its file on a digest mismatch.
      });
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
      (deep && await hashOf(path) !== digest)
    ) out.push(rel);
  }
  return out;
}

/**
 * Entries under `dir` that the marker does not name (paths relative to `dir`). Temp files a
 * dead publisher left are not counted (they are removed when the folder is next written).
 */
async function foreignEntries(dir: string, marker: OutMarker | null): Promise<string[]> {
  const named = new Set(Object.keys(marker?.files ?? {}));
  const parents = new Set<string>();
  for (const rel of named) {
    for (let d = dirname(rel); d !== "." && d !== ""; d = dirname(d)) parents.add(d);
  }
  const out: string[] = [];
  const walk = async (path: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(path));
    } catch (e) {
      // Swapped away by another run meanwhile: what is not there is nobody's.
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    for (const e of entries) {
      const full = join(path, e.name);
      const rel = relative(dir, full);
      if (marker && rel === MARKER) continue;
      if (marker && isOwnedTemp(e.name)) continue;
      if (e.isDirectory && parents.has(rel)) await walk(full);
      else if (!(e.isFile && named.has(rel))) out.push(e.isDirectory ? `${rel}/` : rel);
    }
  };
  await walk(dir);
  return out.sort();
}

/** Temp names a publish gives (`….tmp-<pid>-<random>`, `….old-<pid>-<random>`). */
const TEMP = /\.(tmp|old)-(\d+-[0-9a-f]{8})$/;

function isOwnedTemp(name: string): boolean {
  return TEMP.test(name);
}

/**
 * Half-written or replaced copies beside `name` that an interrupted publish left (called
 * holding the parent's lock): a copy aside whose writer no longer holds its lock, and any
 * `.old-` folder (those are only made and removed under the lock).
 */
async function removeLeftovers(parent: string, name: string): Promise<void> {
  for await (const entry of Deno.readDir(parent)) {
    const m = TEMP.exec(entry.name);
    if (!m || entry.name !== `${name}.${m[1]}-${m[2]}` || !entry.isDirectory) continue;
    const path = join(parent, entry.name);
    if (m[1] === "tmp" && !(await unlocked(path))) continue;
    await Deno.remove(path, { recursive: true });
  }
}

/** Whether nobody holds the lock of a folder (its writer is gone). */
async function unlocked(path: string): Promise<boolean> {
  const handle = await Deno.open(path, { read: true });
  try {
    return await handle.tryLock(true);
  } finally {
    handle.close();
  }
}

/** Temp files of an interrupted repair inside a published folder (called holding the lock). */
async function removeInnerLeftovers(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    const m = TEMP.exec(e.name);
    if (m && m[1] === "tmp" && e.isFile) await Deno.remove(path);
    else if (e.isDirectory) await removeInnerLeftovers(path);
  }
}

/** Runs `fn` holding an exclusive advisory lock on `target`'s parent folder. */
async function withParentLock<T>(target: string, fn: () => Promise<T>): Promise<T> {
  const parent = dirname(target);
  await Deno.mkdir(parent, { recursive: true });
  const handle = await Deno.open(parent, { read: true });
  try {
    await handle.lock(true);
    return await fn();
  } finally {
    handle.close();
  }
}

async function writeMarker(dir: string, marker: OutMarker): Promise<void> {
  const text = JSON.stringify({ ...marker, written: new Date().toISOString() }, null, 1);
  await writeFileAtomic(join(dir, MARKER), new TextEncoder().encode(text));
}

async function statOf(path: string): Promise<FileStat> {
  const info = await Deno.stat(path);
  return { size: info.size, mtimeMs: info.mtime?.getTime() ?? -1 };
}

async function hashOf(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}

function checkRelative(rel: string): void {
  if (rel.split("/").some((p) => p === ".." || p === "" || p === ".") || rel === MARKER) {
    throw new Error(
      `cannot publish ${JSON.stringify(rel)}: expected a relative path inside the folder`,
    );
  }
}

/**
 * fetch-images: every image of the index, downloaded with HTTP Range resume from the mirrors
 * and then its own URL, MD5 computed while streaming, accepted only when size and MD5 match the
 * spec. Hosts are limited to `download.concurrency_per_host` at once; a quota page or HTTP 429
 * backs that host off (`download.quota_backoff_s`, doubling) while other hosts continue, and
 * does not use up one of the `download.attempts`. An image whose bytes are already in the store
 * (found by its MD5) is never downloaded again. Images of a local dataset (a folder's files, tar
 * members, Parquet rows) are not copied: each item records where its bytes lie and the size and
 * MD5 its listing found, which every reader checks (lib/dataset/image_source.ts). With
 * `dataset.adopt`, copies the user already has (folders, `.zip` archives) are verified against
 * the spec and copied in first: only what they lack or hold wrongly is downloaded, and the
 * reconciliation is printed at the end (and by `--dry-run`). With
 * `download.google_api_key_env`, Drive links go through the Drive API with that key.
 *
 * Reads: the index of `fetch-json`. Produces per item: `image` (the file's bytes, downloaded
 * or adopted), or `in_place` in its metadata (where a local image lies, its size and MD5).
 *
 * @module
 */
import { join } from "node:path";
import { type ActionResult, each, type Json } from "../lib/dag/task.ts";
import { candidateUrls, type DatasetItem, decodeItemIndex } from "../lib/dataset/item_index.ts";
import {
  type InPlaceImage,
  inPlaceImage,
  SourceChangedError,
  where,
} from "../lib/dataset/image_source.ts";
import { adoptIntoStore, AdoptSources, type Taken } from "../lib/dataset/adopt.ts";
import { checkAdoptSources } from "../lib/dataset/adopt_listing.ts";
import { summarizeAdoption } from "../lib/dataset/adopt_summary.ts";
import { materialize, type MaterializeConflict } from "../lib/dataset/materialize.ts";
import type { ItemOutcome } from "../lib/dataset/reconciliation.ts";
import { DriveApi } from "../lib/net/drive_api.ts";
import { downloadVerified } from "../lib/net/download.ts";
import { HashPool } from "../lib/net/hash_pool.ts";
import { HostGate } from "../lib/net/host_gate.ts";
import type { Config } from "../config/schema.ts";

/** An item the listing found unusable (see `DatasetItem.error`). */
export class UnusableItemError extends Error {
  override readonly name = "UnusableItemError";
}

interface Network {
  gate: HostGate;
  hashes: HashPool;
  /** The copies of `dataset.adopt`, opened once per run. */
  adopt: AdoptSources | null;
  /** Items whose copies were rejected in this run, so a retried download does not reread them. */
  rejected: Map<string, Taken>;
  drive: DriveApi | null;
  /** Files `download.materialize` left alone because latentforge did not write them. */
  conflicts: MaterializeConflict[];
}

export default each<Config, Network>({
  name: "fetch-images",
  deps: ["fetch-json"],
  config: [],
  // A Parquet table's image column says where an image's bytes are; its MD5 keys them.
  reads: ["download", "dataset.kind", "dataset.mirrors", "dataset.adopt", "dataset.image_column"],
  version: "1",
  source: import.meta.url,
  describe: "download every image, verified by size and MD5",
  concurrency: (config) => config.download.concurrency_per_host * 4,
  retry: (config) => ({ attempts: config.download.attempts }),
  async check(config) {
    await checkAdoptSources(adoptPaths(config));
  },
  async items(ctx, up) {
    const index = decodeItemIndex(await ctx.store.get(up.aggregate("fetch-json").objects.index));
    const column = imageColumn(ctx.config);
    // The key is what identifies the bytes: MD5 and size when the spec gives them, else the
    // URL. Where to fetch from (URLs, mirrors) is not part of it; where a local image lies is,
    // since its readers go there (preprocess's tensor identity keeps a move from rerunning
    // anything past preprocess).
    return index.items.map((spec) => {
      const inPlace = inPlaceImage(spec, column);
      const params: Json = inPlace
        ? { md5: inPlace.md5, size: inPlace.size, at: inPlace.location as unknown as Json }
        : spec.md5
        ? { md5: spec.md5, size: spec.size }
        : { url: spec.url, local: spec.local_path ?? null };
      return { id: spec.id, params, extra: spec as unknown as Json };
    });
  },
  async prepare(ctx) {
    const { download } = ctx.config;
    const gate = new HostGate({
      perHost: download.concurrency_per_host,
      quotaBackoffS: download.quota_backoff_s,
      backoffSetting: "download.quota_backoff_s",
      perHostSetting: "download.concurrency_per_host",
    });
    const drive = DriveApi.fromConfig(download);
    const paths = adoptPaths(ctx.config);
    const adopt = paths.length ? await AdoptSources.open(paths) : null;
    const hashes = new HashPool({ workers: 1 });
    return { state: { gate, hashes, adopt, rejected: new Map(), drive, conflicts: [] } };
  },
  async summarize(ctx, { items, done, dryRun, upstream }, net) {
    const paths = adoptPaths(ctx.config);
    const specs = items === null
      ? null
      : (await Array.fromAsync(items())).map((i) => i.extra as unknown as DatasetItem);
    const all = specs === null || paths.length === 0 ? undefined : decodeItemIndex(
      await ctx.store.get(upstream.aggregate("fetch-json").objects.index),
    ).items;
    const recorded = new Map<string, ItemOutcome | undefined>();
    for await (const { id, out } of done) {
      recorded.set(id, (out.meta as { adopt?: ItemOutcome }).adopt);
    }
    await summarizeAdoption({
      paths,
      items: specs,
      spec: all,
      recorded,
      stored: async (spec) =>
        spec.md5 !== null && await ctx.lookupAlias(`md5:${spec.md5}`) !== null,
      sources: net?.adopt ?? undefined,
      planned: dryRun,
      cacheDir: ctx.cacheDir,
      log: ctx.log,
      hashPool: net?.hashes,
      signal: ctx.signal,
    });
    if (net?.conflicts.length) {
      const shown = net.conflicts.slice(0, 5).map((c) => `${c.path} (${c.why})`).join("; ");
      ctx.log(
        `download.materialize left ${net.conflicts.length} file(s) as they were, because ` +
          `latentforge did not write them: ${shown}${net.conflicts.length > 5 ? "; …" : ""}`,
      );
    }
  },
  teardown: (net) => {
    net.hashes.close();
    net.adopt?.close();
    return Promise.resolve();
  },
  async run(ctx, item, net) {
    const spec = item.extra as unknown as DatasetItem;
    if (spec.error !== undefined) throw new UnusableItemError(spec.error);
    const inPlace = inPlaceImage(spec, imageColumn(ctx.config));
    if (inPlace !== null) return await readInPlaceResult(spec, inPlace);
    const { download } = ctx.config;
    const known = spec.md5 ? await ctx.lookupAlias(`md5:${spec.md5}`) : null;
    let digest: string;
    let md5: string;
    let size: number;
    let taken: Taken | null = null;
    if (!known && net.adopt) {
      taken = net.rejected.get(spec.id) ?? await adoptIntoStore(net.adopt, spec, {
        store: ctx.store,
        hashPool: net.hashes,
        signal: ctx.signal,
      });
      if (!taken.stored && taken.outcome) net.rejected.set(spec.id, taken);
    }
    if (known && spec.md5) {
      ({ digest, size } = known);
      md5 = spec.md5;
    } else if (taken?.stored) {
      ({ digest, md5, size } = taken.stored);
    } else {
      const urls = candidateUrls(
        spec,
        ctx.config.dataset.kind === "ffhq" ? ctx.config.dataset.mirrors : [],
      ).map((url) => net.drive?.route(url) ?? url);
      const partialDir = join(ctx.cacheDir, "partial", "images");
      await Deno.mkdir(partialDir, { recursive: true });
      const result = await downloadVerified({
        urls,
        partialPath: join(partialDir, spec.md5 ?? encodeURIComponent(spec.id)),
        expectedSize: spec.size ?? undefined,
        expectedMd5: spec.md5 ?? undefined,
        stallMs: download.stall_s * 1000,
        signal: ctx.signal,
        hostGate: net.gate,
        hashPool: net.hashes,
        requestHeaders: (url) => net.drive?.headersFor(url),
      });
      // Named first: a run killed before this item's record still finds the downloaded bytes.
      await ctx.announceAlias(`md5:${result.md5}`, result.sha256);
      digest = await ctx.store.putFile(result.path, result.sha256);
      ({ md5, size } = result);
    }
    if (download.materialize) {
      const conflict = await materialize(ctx.store, digest, download.materialize, spec.path);
      if (conflict) net.conflicts.push(conflict);
    }
    return {
      objects: { image: digest },
      meta: {
        md5,
        size,
        path: spec.path,
        pixel_size: spec.pixel_size,
        pixel_md5: spec.pixel_md5,
        category: spec.category,
        ...(taken?.outcome ? { adopt: taken.outcome } : {}),
      },
      // The next item with these bytes (or this one, rekeyed) finds them by their MD5.
      aliases: { [`md5:${md5}`]: digest },
    };
  },
});

/** The column of a Parquet table's image bytes. */
function imageColumn(config: Config): string {
  return config.dataset.kind === "parquet" ? config.dataset.image_column : "image";
}

/** `dataset.adopt` (folders are local already: nothing to adopt). */
function adoptPaths(config: Config): string[] {
  return "adopt" in config.dataset ? config.dataset.adopt : [];
}

/**
 * A local image is read where it lies by the tasks that use it; here only a `stat` says it is
 * still there (and a folder's file still has its size), so a vanished file fails early, named.
 */
async function checkStillThere(location: InPlaceImage["location"], size: number): Promise<void> {
  const path = location.kind === "file" ? location.path : location.file;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new SourceChangedError(`${where(location)} no longer exists (it was listed)`);
  }
  if (location.kind === "file" && info.size !== size) {
    throw new SourceChangedError(
      `${path} changed since it was listed: expected ${size} bytes, found ${info.size}`,
    );
  }
}

/** A local image read where it lies: recorded with the size and MD5 its listing found. */
async function readInPlaceResult(
  spec: DatasetItem,
  inPlace: NonNullable<ReturnType<typeof inPlaceImage>>,
): Promise<ActionResult> {
  await checkStillThere(inPlace.location, inPlace.size);
  const { md5, size } = inPlace;
  return {
    objects: {},
    meta: {
      md5,
      size,
      path: spec.path,
      pixel_size: null,
      pixel_md5: null,
      category: spec.category,
      in_place: inPlace as unknown as Json,
    },
  };
}

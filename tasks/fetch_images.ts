/**
 * fetch-images: every image of the index, downloaded with HTTP Range resume from the mirrors
 * and then its own URL, MD5 computed while streaming, accepted only when size and MD5 match the
 * spec. Hosts are limited to `download.concurrency_per_host` at once; a quota page or HTTP 429
 * backs that host off (`download.quota_backoff_s`, doubling) while other hosts continue, and
 * does not use up one of the `download.attempts`. An image whose bytes are already in the store
 * (found by its MD5) is never downloaded again. Folder items are imported from disk.
 *
 * Reads: the index of `fetch-json`. Produces per item: `image` (the file's bytes).
 *
 * @module
 */
import { join } from "node:path";
import { each, type Json } from "../lib/dag/task.ts";
import { candidateUrls, type DatasetItem, decodeItemIndex } from "../lib/dataset/item_index.ts";
import { verifyLocalFile } from "../lib/dataset/local_file.ts";
import { downloadVerified } from "../lib/net/download.ts";
import { HashPool } from "../lib/net/hash_pool.ts";
import { HostGate } from "../lib/net/host_gate.ts";
import type { ObjectStore } from "../lib/store/objects.ts";
import type { Config } from "../config/schema.ts";

interface Network {
  gate: HostGate;
  hashes: HashPool;
}

export default each<Config, Network>({
  name: "fetch-images",
  deps: ["fetch-json"],
  config: [],
  reads: ["download", "dataset.mirrors"],
  version: "1",
  source: import.meta.url,
  describe: "download every image, verified by size and MD5",
  concurrency: (config) => config.download.concurrency_per_host * 4,
  retry: (config) => ({ attempts: config.download.attempts }),
  async items(ctx, up) {
    const index = decodeItemIndex(await ctx.store.get(up.aggregate("fetch-json").objects.index));
    // The key is what identifies the bytes: MD5 and size when the spec gives them, else the
    // URL. Where to fetch from (URLs, mirrors) is not part of it.
    return index.items.map((spec) => {
      const params: Json = spec.md5
        ? { md5: spec.md5, size: spec.size }
        : { url: spec.url, local: spec.local_path ?? null };
      return { id: spec.id, params, extra: spec as unknown as Json };
    });
  },
  prepare: (ctx) => {
    const { download } = ctx.config;
    const gate = new HostGate({
      perHost: download.concurrency_per_host,
      quotaBackoffS: download.quota_backoff_s,
    });
    return Promise.resolve({ state: { gate, hashes: new HashPool({ workers: 1 }) } });
  },
  teardown: (net) => Promise.resolve(net.hashes.close()),
  async run(ctx, item, net) {
    const spec = item.extra as unknown as DatasetItem;
    const { download } = ctx.config;
    const known = spec.md5 ? await ctx.lookupAlias(`md5:${spec.md5}`) : null;
    let digest: string;
    let md5: string;
    let size: number;
    if (known && spec.md5) {
      ({ digest, size } = known);
      md5 = spec.md5;
    } else if (spec.local_path) {
      const file = await verifyLocalFile(spec.local_path, {
        expectedSize: spec.size,
        expectedMd5: spec.md5,
      });
      const tmp = ctx.store.tempPath("import");
      await Deno.copyFile(file.path, tmp);
      digest = await ctx.store.putFile(tmp, file.sha256);
      ({ md5, size } = file);
    } else {
      const urls = candidateUrls(
        spec,
        ctx.config.dataset.kind === "ffhq" ? ctx.config.dataset.mirrors : [],
      );
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
      });
      digest = await ctx.store.putFile(result.path, result.sha256);
      ({ md5, size } = result);
    }
    if (download.materialize) await materialize(ctx.store, digest, download.materialize, spec.path);
    return {
      objects: { image: digest },
      meta: {
        md5,
        size,
        path: spec.path,
        pixel_size: spec.pixel_size,
        pixel_md5: spec.pixel_md5,
        category: spec.category,
      },
      // The next item with these bytes (or this one, rekeyed) finds them by their MD5.
      aliases: { [`md5:${md5}`]: digest },
    };
  },
});

/** Lays the image out in the familiar tree (`images1024x1024/00000/00000.png`). */
async function materialize(store: ObjectStore, digest: string, root: string, rel: string) {
  const target = join(root, rel);
  await Deno.mkdir(join(target, ".."), { recursive: true });
  await Deno.remove(target).catch(() => {});
  try {
    await Deno.link(store.path(digest), target);
  } catch {
    await Deno.copyFile(store.path(digest), target);
  }
}

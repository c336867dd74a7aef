/**
 * fetch-json: the dataset's spec turned into a compact item index (id, url, path, size, MD5,
 * pixel size, pixel MD5, category). For FFHQ the 255 MB spec (a declared file: the engine
 * downloads it resumably, verified by size and MD5, or finds it in the store) is read as a
 * stream; a folder is listed (sizes and MD5s; what it skipped, and entries that cannot be used,
 * are logged); a URL list is read as CSV or text; class folders, tar shards and Parquet files
 * are listed where they are (lib/dataset/local_dataset.ts). A folder's files are read only when
 * their size, time or inode differ from what the previous listing remembered.
 *
 * Produces: `index` (JSON lines, see lib/dataset/item_index.ts) and `listing` (JSON: the files
 * a folder listing skipped); for folders, `digests`, the memo the next listing starts from
 * (lib/dataset/digest_memo.ts), which its dependants do not key on: a touched file relists,
 * reruns nothing downstream.
 *
 * @module
 */
import { aggregate, type TaskContext } from "../lib/dag/task.ts";
import { ingestFfhqSpecStream } from "../lib/dataset/ffhq_spec.ts";
import {
  checkDatasetFolder,
  folderFingerprint,
  ingestFolder,
  type SkippedFile,
} from "../lib/dataset/folder_spec.ts";
import { encodeItemIndex, type ItemIndex } from "../lib/dataset/item_index.ts";
import { parseUrlList } from "../lib/dataset/url_list.ts";
import { ingestLocalDataset, localDatasetFingerprint } from "../lib/dataset/local_dataset.ts";
import { listingMemoName, previousDigests } from "../lib/dataset/listing_memo.ts";
import { WalkDigests } from "../lib/dataset/walk_digests.ts";
import { DriveApi } from "../lib/net/drive_api.ts";
import type { Config } from "../config/schema.ts";

export default aggregate<Config>({
  name: "fetch-json",
  deps: [],
  // What the listing reads: every dataset field but the name and where copies are.
  config: ["dataset", "!dataset.name", "!dataset.mirrors", "!dataset.adopt"],
  reads: ["download.stall_s", "download.google_api_key_env", "download.google_api_url"],
  // Another kind or source is another dataset (on a cache shared by several).
  scope: ["dataset.kind", "dataset.spec", "dataset.path", "dataset.list"],
  version: "1",
  source: import.meta.url,
  describe: "download the dataset spec and index its items",
  files: ({ dataset }) =>
    dataset.kind === "ffhq"
      ? { spec: "dataset.spec" }
      : dataset.kind === "urls"
      ? { list: "dataset.list" }
      : {},
  // FFHQ's spec is a Google Drive link: with a key, it goes through the Drive API.
  download: ({ download }) => ({
    stallMs: download.stall_s * 1000,
    drive: DriveApi.fromConfig(download),
  }),
  async check(config) {
    if (config.dataset.kind === "folder") {
      await checkDatasetFolder(config.dataset.path).catch((e) => {
        throw new Error(`dataset.path: ${(e as Error).message}`);
      });
    }
  },
  async fingerprint(ctx) {
    return await sourceFingerprint(ctx);
  },
  async run(ctx) {
    const memoName = listingMemoName(ctx.config.dataset);
    const digests = memoName === null ? undefined : new WalkDigests(
      await previousDigests(memoName, {
        lookup: ctx.lookupAlias,
        get: (digest) => ctx.store.get(digest),
        log: ctx.log,
      }),
    );
    const index = await readIndex(ctx, digests);
    const skipped = "skipped" in index ? index.skipped as SkippedFile[] : [];
    logListing(ctx, index, skipped);
    const digest = await ctx.store.put(encodeItemIndex(index));
    const output = {
      objects: { index: digest, listing: await ctx.store.putJson({ skipped }) },
      meta: { items: index.items.length, source: index.source, skipped: skipped.length },
    };
    if (digests === undefined) return output;
    const { hashed, reused } = digests.counts;
    ctx.log(
      `read ${hashed} ${hashed === 1 ? "file" : "files"}, ${reused} unchanged since the last ` +
        "listing (same size, time and inode)",
    );
    const memo = await ctx.store.put(digests.memo());
    return {
      ...output,
      objects: { ...output.objects, digests: memo },
      // The memo changes with every touched file; what it lists does not.
      identity: output,
      aliases: { [memoName!]: memo },
    };
  },
});

/** One line for the files skipped and one for the entries that will fail, each named. */
function logListing(ctx: TaskContext<Config>, index: ItemIndex, skipped: SkippedFile[]) {
  const names = (list: string[]) =>
    list.slice(0, 20).join(", ") + (list.length > 20 ? `, … (${list.length - 20} more)` : "");
  if (skipped.length) {
    const one = skipped.length === 1;
    ctx.log(
      `skipped ${skipped.length} ${one ? "file" : "files"} that ${
        one ? "is not an image" : "are not images"
      } by extension: ${names(skipped.map((s) => s.path))}`,
    );
  }
  const unusable = index.items.filter((i) => i.error !== undefined);
  if (unusable.length) {
    const one = unusable.length === 1;
    ctx.log(
      `${unusable.length} ${one ? "file" : "files"} cannot be used and will fail (the others ` +
        `are built): ${names(unusable.map((i) => i.error!))}`,
    );
  }
}

async function readIndex(ctx: TaskContext<Config>, digests?: WalkDigests): Promise<ItemIndex> {
  const dataset = ctx.config.dataset;
  switch (dataset.kind) {
    case "ffhq": {
      // Errors name the file the user configured, not its copy in the store.
      const name = dataset.spec.path ?? dataset.spec.url!;
      await checkJsonStart(ctx.files.spec.path, `dataset.spec ${name}`);
      using file = await Deno.open(ctx.files.spec.path);
      return await ingestFfhqSpecStream(file.readable, name, { component: dataset.component });
    }
    case "folder":
      return await ingestFolder(dataset.path, { extensions: dataset.extensions, digests });
    case "urls": {
      return parseUrlList(
        await Deno.readTextFile(ctx.files.list.path),
        dataset.list.path ?? dataset.list.url!,
      );
    }
    default:
      return await ingestLocalDataset(dataset, { digests });
  }
}

/** Raised when a spec is not JSON at all (an HTML page, a zip, an empty file). */
export class NotJsonError extends Error {
  override readonly name = "NotJsonError";
}

/**
 * Fails at once, naming the file and showing how it starts, unless `path` starts like a JSON
 * object: a spec that is an HTML page ("Quota exceeded") or an archive is said to be one,
 * before any item is read.
 */
async function checkJsonStart(path: string, label: string): Promise<void> {
  using file = await Deno.open(path);
  const head = new Uint8Array(120);
  const n = (await file.read(head)) ?? 0;
  const text = new TextDecoder().decode(head.subarray(0, n));
  if (text.trimStart().startsWith("{")) return;
  const shown = n === 0 ? "it is empty" : `it starts with ${JSON.stringify(text.slice(0, 80))}`;
  const html = /^\s*<(!doctype html|html|head|body)/i.test(text) ? " (an HTML page)" : "";
  throw new NotJsonError(`${label} is not JSON: ${shown}${html}`);
}

/**
 * What tells that a folder's content changed when the config did not: its listing (paths,
 * sizes, modification times, links followed as the listing follows them). A spec or URL list
 * is a declared file, keyed by its content.
 */
async function sourceFingerprint(ctx: TaskContext<Config>): Promise<string | null> {
  const dataset = ctx.config.dataset;
  if (dataset.kind === "ffhq" || dataset.kind === "urls") return null;
  if (dataset.kind !== "folder") return await localDatasetFingerprint(dataset);
  return await folderFingerprint(dataset.path, { extensions: dataset.extensions });
}

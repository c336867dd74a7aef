/**
 * fetch-json: the dataset's spec turned into a compact item index (id, url, path, size, MD5,
 * pixel size, pixel MD5, category). For FFHQ the 255 MB spec (a declared file: the engine
 * downloads it resumably, verified by size and MD5, or finds it in the store) is read as a stream; a folder is listed (sizes and MD5s computed); a URL list
 * is read as CSV or text.
 *
 * Produces: `index` (JSON lines, see lib/dataset/item_index.ts).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { aggregate, type TaskContext } from "../lib/dag/task.ts";
import { ingestFfhqSpecStream } from "../lib/dataset/ffhq_spec.ts";
import { ingestFolder } from "../lib/dataset/folder_spec.ts";
import { encodeItemIndex, type ItemIndex } from "../lib/dataset/item_index.ts";
import { parseUrlList } from "../lib/dataset/url_list.ts";
import type { Config } from "../config/schema.ts";

export default aggregate<Config>({
  name: "fetch-json",
  deps: [],
  config: [
    "dataset.kind",
    "dataset.spec",
    "dataset.component",
    "dataset.path",
    "dataset.extensions",
    "dataset.list",
  ],
  reads: ["download.stall_s"],
  version: "1",
  source: import.meta.url,
  describe: "download the dataset spec and index its items",
  files: ({ dataset }) =>
    dataset.kind === "ffhq"
      ? { spec: "dataset.spec" }
      : dataset.kind === "urls"
      ? { list: "dataset.list" }
      : {},
  async fingerprint(ctx) {
    return await folderFingerprint(ctx);
  },
  async run(ctx) {
    const index = await readIndex(ctx);
    const digest = await ctx.store.put(encodeItemIndex(index));
    return {
      objects: { index: digest },
      meta: { items: index.items.length, source: index.source },
    };
  },
});

async function readIndex(ctx: TaskContext<Config>): Promise<ItemIndex> {
  const dataset = ctx.config.dataset;
  switch (dataset.kind) {
    case "ffhq": {
      using file = await Deno.open(ctx.files.spec.path);
      // Errors name the file the user configured, not its copy in the store.
      const name = dataset.spec.path ?? dataset.spec.url!;
      return await ingestFfhqSpecStream(file.readable, name, { component: dataset.component });
    }
    case "folder":
      return await ingestFolder(dataset.path, { extensions: dataset.extensions });
    case "urls": {
      return parseUrlList(
        await Deno.readTextFile(ctx.files.list.path),
        dataset.list.path ?? dataset.list.url!,
      );
    }
  }
}

/**
 * What tells that a folder's content changed when the config did not: its listing (names,
 * sizes, modification times). A spec or URL list is a declared file, keyed by its content.
 */
async function folderFingerprint(ctx: TaskContext<Config>): Promise<string | null> {
  const dataset = ctx.config.dataset;
  if (dataset.kind !== "folder") return null;
  const hash = createHash("sha256");
  const walk = async (dir: string) => {
    const entries = await Array.fromAsync(Deno.readDir(dir)).catch(() => []);
    entries.sort((a, b) => a.name < b.name ? -1 : 1);
    for (const e of entries) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else {
        const info = await Deno.stat(path);
        hash.update(`${path}\t${info.size}\t${info.mtime?.getTime()}\n`);
      }
    }
  };
  await walk(dataset.path);
  return hash.digest("hex");
}

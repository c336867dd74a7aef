/**
 * Builds the item index of WebDataset tar shards (img2dataset's output): members are grouped by
 * key (the member's path up to the first dot of its file name), a key with an image member
 * (`{key}.jpg`, any of the folder listing's extensions) is an image, `{key}.txt` its caption
 * and `{key}.json` its other metadata. Shards are read where they lie (tar_shard.ts).
 *
 * - **Ids** are the keys; two shards giving one key fail both images, named.
 * - **Splits**: `all`, or the split each shard is listed under in `dataset.splits`.
 * - **Damage**: a member that cannot be used (a JSON that does not parse, two images for one
 *   key) fails its image, named; a header that cannot be read fails the rest of its shard as
 *   one item named by the shard and the header's byte offset (`<shard>@<offset>`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename } from "node:path";
import type { SkippedFile } from "./folder_spec.ts";
import { type DatasetItem, type ItemIndex, SpecError } from "./item_index.ts";
import { imageNameTest } from "./image_extensions.ts";
import { walkTarShard } from "./tar_shard.ts";

/** The shards of each split, patterns expanded, in listing order. */
export type SplitFiles = [split: string, files: string[]][];

/** What one key's members gave while walking a shard. */
interface Sample {
  image?: DatasetItem;
  caption?: string;
  meta?: { [key: string]: unknown };
  problems: string[];
}

/**
 * Lists the shards of every split, in the order given, members in shard order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await Deno.writeFile(`${dir}/000.jpg`, new Uint8Array([255, 216, 255]));
 *   await Deno.writeTextFile(`${dir}/000.txt`, "a red fox");
 *   const args = ["-cf", `${dir}/s.tar`, "-C", dir, "000.jpg", "000.txt"];
 *   await new Deno.Command("tar", { args }).output();
 *   const index = await ingestWebDataset([["all", [`${dir}/s.tar`]]]);
 *   assert.deepEqual(index.items.map((i) => [i.id, i.caption, i.path]), [["000", "a red fox", "s.tar/000.jpg"]]);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function ingestWebDataset(
  splits: SplitFiles,
  { extensions }: { extensions?: readonly string[] } = {},
): Promise<ItemIndex & { skipped: SkippedFile[] }> {
  const isImage = imageNameTest(extensions);
  const items: DatasetItem[] = [];
  const skipped: SkippedFile[] = [];
  for (const [split, shards] of splits) {
    for (const shard of shards) {
      const name = basename(shard);
      const samples = new Map<string, Sample>();
      const damage = await walkTarShard(shard, async (entry, read) => {
        const slash = entry.name.lastIndexOf("/");
        const dot = entry.name.indexOf(".", slash + 1);
        if (dot <= slash + 1) {
          skipped.push({ path: `${name}/${entry.name}`, reason: "no key (a name without a dot)" });
          return;
        }
        const key = entry.name.slice(0, dot);
        const ext = entry.name.slice(dot + 1).toLowerCase();
        const sample = samples.get(key) ?? { problems: [] };
        samples.set(key, sample);
        const where = `${shard}: member ${entry.name}`;
        if (isImage(entry.name)) {
          if (sample.image) {
            sample.problems.push(`${where}: a second image for key ${key} (${sample.image.path})`);
            return;
          }
          const bytes = await read();
          sample.image = {
            id: key,
            url: null,
            path: `${name}/${entry.name}`,
            size: entry.size,
            md5: createHash("md5").update(bytes).digest("hex"),
            pixel_size: null,
            pixel_md5: null,
            category: split,
            member: { kind: "tar", file: shard, offset: entry.offset, size: entry.size },
          };
        } else if (ext === "txt") {
          sample.caption = new TextDecoder().decode(await read());
        } else if (ext === "json") {
          const text = new TextDecoder().decode(await read());
          try {
            const parsed = JSON.parse(text);
            if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
              sample.problems.push(`${where}: expected a JSON object, found ${text.slice(0, 40)}`);
            } else sample.meta = parsed;
          } catch (e) {
            sample.problems.push(`${where}: not JSON (${(e as Error).message})`);
          }
        }
      });
      for (const [key, sample] of samples) {
        if (!sample.image) {
          skipped.push({ path: `${name}/${key}`, reason: "no image member for this key" });
          continue;
        }
        const item = sample.image;
        if (sample.caption !== undefined) item.caption = sample.caption;
        if (sample.meta !== undefined) item.meta = sample.meta;
        if (sample.problems.length > 0) item.error = sample.problems.join("; ");
        items.push(item);
      }
      if (damage) {
        items.push(damagedShard(shard, split, damage.offset, damage.reason));
      }
    }
  }
  if (items.length === 0) {
    throw new SpecError(`no images found in ${splits.flatMap(([, s]) => s).join(", ")}`);
  }
  return { source: "webdataset", items: withUniqueIds(items), skipped };
}

/**
 * The item that stands for the unreadable rest of a shard: it fails in fetch-images, naming
 * the shard and the offset of the header that could not be read.
 */
export function damagedShard(
  file: string,
  split: string,
  offset: number,
  reason: string,
): DatasetItem {
  return {
    id: `${basename(file)}@${offset}`,
    url: null,
    path: basename(file),
    size: null,
    md5: null,
    pixel_size: null,
    pixel_md5: null,
    category: split,
    error: `${file}: the tar header at byte ${offset} cannot be read (${reason}); the rest of ` +
      `the shard is not read`,
  };
}

/** Items that share an id fail, each naming the others (ids must name one image). */
export function withUniqueIds(items: DatasetItem[]): DatasetItem[] {
  const byId = new Map<string, DatasetItem[]>();
  for (const item of items) byId.set(item.id, [...byId.get(item.id) ?? [], item]);
  for (const [id, group] of byId) {
    if (group.length < 2) continue;
    for (const item of group) {
      const others = group.filter((o) => o !== item).map((o) => o.path).join(", ");
      item.error ??= `${item.path} and ${others} both give the item id ${JSON.stringify(id)}`;
    }
  }
  // Ids stay unique in the index: the clashing ones keep their path, as a folder listing does.
  const seen = new Set<string>();
  return items.map((item) => {
    if (!seen.has(item.id)) {
      seen.add(item.id);
      return item;
    }
    return { ...item, id: item.path };
  });
}

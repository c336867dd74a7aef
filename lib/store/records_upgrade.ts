/**
 * Bringing a cache's records to the format this code reads. A fresh cache is marked; a cache
 * written by an earlier latentforge (record format 1: one-letter fields under `act`, `old`,
 * `fail`, …) is migrated when it is opened, in batches that each move a set of records
 * atomically, so a migration killed half-way resumes on the next open; a cache from a newer
 * latentforge is refused. Format 3 keys actions on their task's code identity: its records are
 * those of format 2, adopted under their new keys by the first plan that reads them
 * (lib/dag/adoption.ts); the mark keeps a latentforge of format 2 from missing every one of
 * them and recomputing.
 *
 * @module
 */
import { join } from "node:path";
import { readDirOrNull, statOrNull } from "../base/fs.ts";
import type { Json } from "./canonical.ts";
import { KEYS } from "./record_keys.ts";
import { MAX_MUTATIONS } from "./record_writer.ts";
import {
  type ActionRecord,
  type AliasRecord,
  type FailureRecord,
  type LegacyTaskComponents,
  RecordFormatError,
} from "./record_types.ts";

/** The record layout this code reads and writes. */
export const RECORD_FORMAT = 3;

/**
 * Brings the records of `kv` (the database of cache `cacheDir`) to {@link RECORD_FORMAT}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ActionRecord } from "./record_types.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const kv = await Deno.openKv(`${dir}/records.sqlite3`);
 * await kv.set(["act", "square", "3"], {
 *   k: "key", x: "taskhash", i: {}, o: { value: "ab" }, m: null, d: "digest", r: 1, ms: 2,
 * });
 * await upgradeRecords(kv, dir);
 * const moved = await kv.get<ActionRecord>(["action", "square", "3"]);
 * assert.equal(moved.value?.key, "key");
 * assert.equal((await kv.get(["act", "square", "3"])).value, null);
 * assert.deepEqual((await kv.get(["format"])).value, { version: RECORD_FORMAT });
 * kv.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function upgradeRecords(kv: Deno.Kv, cacheDir: string): Promise<void> {
  const format = (await kv.get<{ version: number }>(KEYS.format)).value;
  if (format?.version === RECORD_FORMAT) return;
  if (format && format.version > RECORD_FORMAT) {
    throw new RecordFormatError(
      `the cache ${cacheDir} was written by a newer latentforge (record format ` +
        `${format.version}); this one reads format ${RECORD_FORMAT}: upgrade latentforge, or ` +
        `use another --cache`,
    );
  }
  await migrateFormat1(kv, cacheDir);
  await kv.set(KEYS.format, { version: RECORD_FORMAT });
}

/** Records as format 1 spelled them. */
interface ActionRecordV1 {
  k: string;
  x: string;
  i: Record<string, string>;
  q?: string;
  o: Record<string, string>;
  m: Json;
  d: string;
  r: number;
  ms: number;
}

function actionFromV1(v: ActionRecordV1): ActionRecord {
  const rec: ActionRecord = {
    key: v.k,
    taskHash: v.x,
    inputs: v.i,
    objects: v.o,
    meta: v.m,
    digest: v.d,
    run: v.r,
    ms: v.ms,
  };
  if (v.q !== undefined) rec.params = v.q;
  return rec;
}

/** How each format-1 key prefix moves: its new key and value. */
const V1_MOVES: Record<string, (key: Deno.KvKey, value: unknown) => [Deno.KvKey, unknown]> = {
  act: ([, task, id], v) => [
    KEYS.action(task as string, id as string),
    actionFromV1(v as ActionRecordV1),
  ],
  old: ([, task, id, run], v) => [
    KEYS.superseded(task as string, id as string, run as number),
    actionFromV1(v as ActionRecordV1),
  ],
  fail: ([, task, id], v) => {
    const f = v as { k: string; reason: string; kind: string; attempts: number; r: number };
    const at = (v as { at: string }).at;
    return [
      KEYS.failure(task as string, id as string),
      {
        key: f.k,
        reason: f.reason,
        kind: f.kind,
        attempts: f.attempts,
        run: f.r,
        at,
      } satisfies FailureRecord,
    ];
  },
  prefix: ([, task, hash], v) => {
    const p = v as { v: string; s: string; c: string };
    return [
      KEYS.taskComponents(task as string, hash as string),
      { version: p.v, source: p.s, config: p.c } satisfies LegacyTaskComponents,
    ];
  },
  cfg: ([, task, hash], v) => [KEYS.configSlice(task as string, hash as string), v],
  prep: ([, task, hash], v) => [KEYS.files(task as string, hash as string), v],
  task: ([, task], v) => [KEYS.lastRun(task as string), v],
};

/**
 * Moves format-1 records to their format-2 keys and names. Each batch checks that the old
 * entries are unchanged, sets the new ones and deletes the old ones in one commit, so two
 * processes opening the cache at once, or a kill mid-way, leave every record in exactly one
 * place. The MD5 index format 1 kept in files under `md5/` becomes aliases.
 */
async function migrateFormat1(kv: Deno.Kv, cacheDir: string): Promise<void> {
  for (const [prefix, move] of Object.entries(V1_MOVES)) {
    while (true) {
      const batch: Deno.KvEntry<unknown>[] = [];
      for await (const e of kv.list({ prefix: [prefix] }, { limit: 300 })) batch.push(e);
      if (batch.length === 0) break;
      const op = kv.atomic();
      for (const e of batch) {
        const [key, value] = move(e.key, e.value);
        op.check(e).set(key, value).delete(e.key);
      }
      // A failed check means another process moved these first: list again.
      await op.commit();
    }
  }
  await importMd5Files(kv, cacheDir);
}

async function importMd5Files(kv: Deno.Kv, cacheDir: string): Promise<void> {
  const root = join(cacheDir, "md5");
  const shards = await readDirOrNull(root);
  if (shards === null) return;
  const objects = join(cacheDir, "objects");
  for (const shard of shards) {
    if (!shard.isDirectory) continue;
    const dir = join(root, shard.name);
    const entries = await Array.fromAsync(Deno.readDir(dir));
    let op = kv.atomic();
    let n = 0;
    for (const entry of entries) {
      if (!/^[0-9a-f]{32}$/.test(entry.name)) continue;
      const digest = await md5FileDigest(join(dir, entry.name));
      if (digest === null) continue;
      // An alias names an object that is there; a missing one is fetched again.
      if (!(await statOrNull(join(objects, digest.slice(0, 2), digest)))) continue;
      op.set(KEYS.alias(`md5:${entry.name}`), { digest } satisfies AliasRecord);
      if (++n % MAX_MUTATIONS === 0) {
        await op.commit();
        op = kv.atomic();
      }
    }
    await op.commit();
  }
  // Every alias is in KV now; the files were latentforge's own.
  await Deno.remove(root, { recursive: true });
}

/** The object digest a format-1 MD5 file names, or null when it names none. */
async function md5FileDigest(path: string): Promise<string | null> {
  let digest: unknown;
  try {
    digest = JSON.parse(await Deno.readTextFile(path)).digest;
  } catch (e) {
    // A file the old version left half-written names nothing: the image is fetched again.
    if (!(e instanceof SyntaxError)) throw e;
    return null;
  }
  return typeof digest === "string" && /^[0-9a-f]{64}$/.test(digest) ? digest : null;
}

/**
 * The coordinator's side of a remote wave, in constant memory per action: the actions queued
 * for the executor go to a spool of JSON lines as they come ({@link WaveSpool}); the wave
 * splits the spool into shard objects in one pass ({@link WaveList.write}), keeping for each
 * action only where its line is; results the workers announce are imported against that line.
 *
 * @module
 */
import type { ObjectStore } from "../store/objects.ts";
import { dirname, join } from "node:path";
import { readDirOrNull, removeIfPresent, writeAll } from "../base/fs.ts";
import { readLines, readSpan } from "../base/lines.ts";
import { StoredText } from "../package/stored_text.ts";
import {
  progressDir,
  progressPath,
  readProgress,
  readResult,
  resultPath,
  type WaveWork,
  WORK_LIST_FORMAT,
  type WorkList,
  type WorkResult,
} from "./remote.ts";
import type { Work } from "./pool.ts";
import type { FlowGate } from "./flow_gate.ts";

/** Results are looked for this many actions at a time while the list is written. */
const LOOKUP_BATCH = 256;

/** The spool writes once this many UTF-16 code units of lines are gathered. */
const SPOOL_WRITE_AT = 1 << 16;

/**
 * Actions queued for a wave, as JSON lines in a temp file of the store. `add` is synchronous:
 * it gathers lines, which are written in pieces of about 64 KiB, one write after the other.
 * Lines gathered and not written yet count as actions in flight on `gate`, so listings wait
 * for the disk rather than the lines pile up in memory.
 */
export class WaveSpool {
  readonly path: string;
  readonly #gate?: FlowGate;
  #file?: Promise<Deno.FsFile>;
  #lines: string[] = [];
  #chars = 0;
  #writing?: Promise<void>;
  #failed: unknown;
  #closed = false;
  #size = 0;

  constructor(store: ObjectStore, gate?: FlowGate) {
    this.path = store.tempPath("wave");
    this.#gate = gate;
  }

  /** Actions added. */
  get size(): number {
    return this.#size;
  }

  /** Queues one action. */
  add(work: Work): void {
    const line = JSON.stringify(work) + "\n";
    this.#size++;
    if (this.#failed !== undefined) return;
    this.#gate?.enter();
    this.#lines.push(line);
    this.#chars += line.length;
    if (this.#chars >= SPOOL_WRITE_AT) this.#writing ??= this.#writeOut();
  }

  /** Writes out what is gathered; the lines can then be read. Throws a write's failure. */
  async flush(): Promise<void> {
    await (this.#writing ??= this.#writeOut());
    if (this.#failed !== undefined) throw this.#failed;
    await this.#close();
  }

  /** Removes the temp file. */
  async remove(): Promise<void> {
    await this.#writing;
    if (!this.#file) return;
    await this.#close();
    await removeIfPresent(this.path);
  }

  async #close(): Promise<void> {
    const file = await this.#file?.catch(() => undefined);
    if (file && !this.#closed) file.close();
    this.#closed = true;
  }

  async #writeOut(): Promise<void> {
    while (this.#lines.length > 0 && this.#failed === undefined) {
      const lines = this.#lines;
      this.#lines = [];
      this.#chars = 0;
      try {
        this.#file ??= Deno.mkdir(dirname(this.path), { recursive: true })
          .then(() => Deno.open(this.path, { write: true, createNew: true }));
        await writeAll(await this.#file, new TextEncoder().encode(lines.join("")));
      } catch (e) {
        // A full disk: the wave fails with it; listings go on, and nothing more is gathered.
        this.#failed = e;
        for (let i = 0; i < this.#lines.length; i++) this.#gate?.leave();
        this.#lines = [];
      }
      for (let i = 0; i < lines.length; i++) this.#gate?.leave();
    }
    this.#writing = undefined;
  }
}

/** What the header of the work list says besides its shards. */
export type WaveHeader = Omit<WorkList, "shards" | "format">;

/** How a wave imports one result (the action's record, or its failure). */
export type ImportResult = (work: Work, result: WorkResult) => Promise<void>;

/** A written wave: its work list, where each action's line is, and which are imported. */
export class WaveList {
  readonly digest: string;
  readonly header: WorkList;
  readonly #store: ObjectStore;
  readonly #spool: Deno.FsFile;
  /** Per action of the list (in list order): its line in the spool. */
  readonly #at: number[];
  readonly #length: number[];
  /** Per shard: its first action's index, and the progress log's offset read so far. */
  readonly #first: number[];
  readonly #read: number[];
  readonly #imported: Uint8Array;
  readonly #left: number[];
  readonly #import: ImportResult;
  #reading: Promise<unknown> = Promise.resolve();

  private constructor(
    digest: string,
    header: WorkList,
    store: ObjectStore,
    spool: Deno.FsFile,
    lines: { at: number[]; length: number[] },
    importResult: ImportResult,
  ) {
    this.digest = digest;
    this.header = header;
    this.#store = store;
    this.#spool = spool;
    this.#at = lines.at;
    this.#length = lines.length;
    this.#first = [];
    let first = 0;
    for (const s of header.shards) {
      this.#first.push(first);
      first += s.count;
    }
    this.#read = header.shards.map(() => 0);
    this.#left = header.shards.map((s) => s.count);
    this.#imported = new Uint8Array(first);
    this.#import = importResult;
  }

  /** Actions in the list. */
  get size(): number {
    return this.#imported.length;
  }

  /**
   * Writes the work list of the actions in `spool` (flushed) as `shards` shards of consecutive
   * actions. An action whose result is already stored (an earlier wave was interrupted) is
   * imported instead of listed; a failed one is listed again. Null when nothing is left to run.
   */
  static async write(
    store: ObjectStore,
    info: WaveHeader,
    spool: WaveSpool,
    shards: number,
    importResult: ImportResult,
  ): Promise<WaveList | null> {
    const total = spool.size;
    const lookup = await hasResults(store, info.task);
    const header: WorkList = { format: WORK_LIST_FORMAT, ...info, shards: [] };
    const lines = { at: [] as number[], length: [] as number[] };
    let shard: StoredText | undefined;
    let count = 0;
    const endShard = async () => {
      header.shards.push({ digest: await shard!.finish(), count });
      shard = undefined;
    };
    let position = 0;
    let batch: { line: { offset: number; length: number }; work: Work }[] = [];
    const take = async () => {
      const results = await Promise.all(
        batch.map(({ work }) => lookup ? readResult(store, info.task, work.key) : null),
      );
      for (const [i, { line, work }] of batch.entries()) {
        const result = results[i];
        // Results of an earlier, interrupted wave need no recomputing; failures are retried,
        // as they would be locally.
        if (result?.output) await importResult(work, result);
        else {
          if (result) await removeIfPresent(resultPath(store.root, info.task, work.key));
          shard ??= await StoredText.open(store, "shard");
          await shard.write(JSON.stringify(waveWork(work)) + "\n");
          lines.at.push(line.offset);
          lines.length.push(line.length);
          count++;
        }
        // Shards are consecutive runs of the spool, cut where an even split puts them.
        position++;
        const s = header.shards.length;
        if (position === Math.floor((s + 1) * total / shards)) {
          if (shard) await endShard();
          // A shard whose actions were all done is still listed: shard numbers stay put.
          else header.shards.push({ digest: "", count: 0 });
          count = 0;
        }
      }
      batch = [];
    };
    for await (const line of readLines(spool.path)) {
      batch.push({ line, work: JSON.parse(line.text) });
      if (batch.length === LOOKUP_BATCH) await take();
    }
    await take();
    if (lines.at.length === 0) return null;
    const digest = await store.putJson(header);
    await store.syncDirs();
    const file = await Deno.open(spool.path, { read: true });
    return new WaveList(digest, header, store, file, lines, importResult);
  }

  /** The action at `index` of the list, read back from the spool. */
  work(index: number): Promise<Work> {
    const read = this.#reading.then(() =>
      readSpan(this.#spool, this.#at[index], this.#length[index])
    );
    this.#reading = read.catch(() => {});
    return read.then((text) => JSON.parse(text) as Work);
  }

  /** Imports the results announced on the shards' progress logs since the last call. */
  async importAnnounced(): Promise<void> {
    for (const [s, shard] of this.header.shards.entries()) {
      if (this.#left[s] === 0) continue;
      const { entries, offset } = await readProgress(
        progressPath(this.#store.root, this.digest, s),
        this.#read[s],
      );
      this.#read[s] = offset;
      for (const [position, key] of entries) {
        if (position < shard.count) await this.#importAt(s, position, key);
      }
    }
  }

  /**
   * Imports every result present, announced or not (a worker killed between writing a result
   * and announcing it), and says which shards still have actions without one.
   */
  async unfinished(): Promise<number[]> {
    await this.importAnnounced();
    const short: number[] = [];
    for (const [s, shard] of this.header.shards.entries()) {
      for (let p = 0; p < shard.count && this.#left[s] > 0; p++) {
        await this.#importAt(s, p);
      }
      if (this.#left[s] > 0) short.push(s);
    }
    return short;
  }

  /** The actions that have no result, in list order. */
  async *missing(): AsyncGenerator<Work> {
    for (let i = 0; i < this.size; i++) if (!this.#imported[i]) yield await this.work(i);
  }

  /** The keys of the actions whose results were imported, in list order. */
  async *importedKeys(): AsyncGenerator<string> {
    for (let i = 0; i < this.size; i++) if (this.#imported[i]) yield (await this.work(i)).key;
  }

  /** Closes the spool file and removes the list's objects and progress logs. */
  async remove(): Promise<void> {
    this.#spool.close();
    for (const s of this.header.shards) if (s.count > 0) await this.#store.remove(s.digest);
    await this.#store.remove(this.digest);
    await removeIfPresent(progressDir(this.#store.root, this.digest), { recursive: true });
  }

  /** Imports the result of the action at `position` of shard `s`, if there is one. */
  async #importAt(s: number, position: number, announced?: string): Promise<void> {
    const index = this.#first[s] + position;
    if (this.#imported[index]) return;
    const work = await this.work(index);
    // A line that names another action is not this list's (a damaged log): it is ignored.
    if (announced !== undefined && announced !== work.key) return;
    const result = await readResult(this.#store, this.header.task, work.key);
    if (!result) return;
    this.#imported[index] = 1;
    this.#left[s]--;
    await this.#import(work, result);
  }
}

/** What a worker needs of an action. */
function waveWork(work: Work): WaveWork {
  const { item, key, comps } = work;
  return { id: item.id, key, comps, inputs: item.inputs, params: item.params, extra: item.extra };
}

/**
 * Whether any result of `task` is stored (else a wave need not look for them): a result file
 * in one of the folders by key prefix, which stay when their results are imported.
 */
async function hasResults(store: ObjectStore, task: string): Promise<boolean> {
  const dir = join(store.root, "results", task);
  for (const prefix of (await readDirOrNull(dir)) ?? []) {
    if (!prefix.isDirectory) continue;
    for await (const _ of Deno.readDir(join(dir, prefix.name))) return true;
  }
  return false;
}

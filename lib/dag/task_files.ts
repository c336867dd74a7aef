/**
 * The files one task declares, through a plan or a run: planned (their identities, or why they
 * cannot be known), keyed (what of them joins the key: their content, or what is read from it),
 * and for a run brought into the store — see file_inputs.ts for each step.
 *
 * @module
 */
import type { ObjectAliases } from "../store/aliases.ts";
import type { ObjectStore } from "../store/objects.ts";
import type { Records, RecordWriter } from "../store/records.ts";
import {
  fileInputDigests,
  keyedFileInputs,
  planFiles,
  type PlannedFile,
  storeFiles,
} from "./file_inputs.ts";
import { isProvisional } from "./staleness.ts";
import type { FileDownloadOptions, RetryPolicy, StoredFile, Task } from "./task.ts";

/** Where a task's files live and are remembered. */
export interface FilesPlace {
  store: ObjectStore;
  records: Records;
  aliases: ObjectAliases;
}

/** A task's declared files. */
export class TaskFiles {
  readonly #task: Task;
  readonly #place: FilesPlace;
  /** The task's code hash: what it read from a file is remembered for this code. */
  readonly #code: string;
  #planned: Record<string, PlannedFile> = {};
  #inputs: Record<string, string> = {};
  #stored: Record<string, StoredFile> = {};

  constructor(task: Task, place: FilesPlace, code: string) {
    this.#task = task;
    this.#place = place;
    this.#code = code;
  }

  /** Input digests of the files as keyed now (identities, or unknown markers in a plan). */
  get inputs(): Readonly<Record<string, string>> {
    return this.#inputs;
  }

  /** The files in the store, by name (empty until {@link store}). */
  get stored(): Record<string, StoredFile> {
    return this.#stored;
  }

  /** Store digests of the files in a run, their identities in a plan. */
  digests(): Record<string, string> {
    const stored = Object.entries(this.#stored);
    return stored.length
      ? Object.fromEntries(stored.map(([n, f]) => [n, f.digest]))
      : { ...this.#inputs };
  }

  /** Plans the files the task declares for `config` (its projected config: `taskConfig`). */
  async plan(config: unknown, taskConfig: unknown): Promise<void> {
    this.#planned = await planFiles(
      this.#task.files?.(taskConfig) ?? {},
      config,
      this.#place.records,
    );
    this.#inputs = await this.#keyed(
      fileInputDigests(this.#planned),
      (name) => this.#plannedBytes(this.#planned[name]),
    );
  }

  /** Brings the planned files into the store for a run. */
  async store(
    options: {
      writer: RecordWriter;
      signal: AbortSignal;
      download?: FileDownloadOptions;
      log: (line: string) => void;
      policy: RetryPolicy;
    },
  ): Promise<void> {
    if (Object.keys(this.#planned).length === 0) return;
    const files = await storeFiles(this.#task.name, this.#planned, { ...this.#place, ...options });
    this.#stored = files.stored;
    this.#inputs = await this.#keyed(files.inputs, (name) => {
      const stored = files.stored[name];
      return Promise.resolve(stored ? { path: stored.path, sha256: stored.digest } : null);
    });
  }

  /**
   * The files keyed on what is read from them, as their bytes' sha256 and their input now (for
   * carrying records over from before, see adoption.ts).
   */
  keyedOnContent(): Record<string, { content: string; input: string }> {
    const out: Record<string, { content: string; input: string }> = {};
    for (const [name, f] of Object.entries(this.#planned)) {
      const input = this.#inputs[name];
      if (f.keyOn && f.identity !== null && input !== undefined && !isProvisional(input)) {
        out[name] = { content: f.identity, input };
      }
    }
    return out;
  }

  #keyed(
    inputs: Record<string, string>,
    where: (name: string) => Promise<{ path: string; sha256: string } | null>,
  ): Promise<Record<string, string>> {
    return keyedFileInputs(this.#planned, inputs, {
      where,
      cache: this.#place.records,
      scope: this.#code,
    });
  }

  /** Where the bytes of a planned file can be read before the run stores it, if anywhere. */
  async #plannedBytes(f: PlannedFile): Promise<{ path: string; sha256: string } | null> {
    if (f.path !== undefined && f.identity !== null) return { path: f.path, sha256: f.identity };
    const { store, aliases } = this.#place;
    if (f.source.sha256 && await store.has(f.source.sha256)) {
      return { path: store.path(f.source.sha256), sha256: f.source.sha256 };
    }
    const known = f.source.md5 ? await aliases.lookup(`md5:${f.source.md5}`) : null;
    return known ? { path: store.path(known.digest), sha256: known.digest } : null;
  }
}

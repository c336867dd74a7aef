/**
 * The end of fetch-images when `dataset.adopt` names local copies: the reconciliation of the
 * copies with the spec, from what the items recorded (their output's `adopt`) and, for the
 * items without an output — those a plan would run, those a run failed — from the same
 * verification the run uses, read-only. A run prints it and keeps it for `status --json` and
 * `package`; `run --dry-run` prints it and writes nothing.
 *
 * @module
 */
import { AdoptSources } from "./adopt.ts";
import type { AdoptItem } from "./adopt_check.ts";
import {
  forgetReconciliation,
  formatReconciliation,
  type ItemOutcome,
  reconcile,
  type Reconciliation,
  recordReconciliation,
} from "./reconciliation.ts";
import { HashPool } from "../net/hash_pool.ts";

/** Options of {@link summarizeAdoption}. */
export interface AdoptionSummaryOptions {
  /** `dataset.adopt`: the copies. */
  paths: readonly string[];
  /** The spec items handled (after `--limit`); `null` when they cannot be listed yet. */
  items: readonly AdoptItem[] | null;
  /** Every spec item, for telling extra files from files of items beyond `--limit`. */
  spec?: readonly AdoptItem[];
  /** The `adopt` field each finished or cached item recorded (absent: nothing adopted). */
  recorded: ReadonlyMap<string, ItemOutcome | undefined>;
  /** Whether an item's bytes are in the store already, so a run would not read its copies. */
  stored: (item: AdoptItem) => Promise<boolean>;
  /** The run's opened copies; a plan opens (and closes) its own. */
  sources?: AdoptSources;
  /** `true` in `run --dry-run`. */
  planned: boolean;
  /** The cache directory, where a run keeps its reconciliation. */
  cacheDir: string;
  /** Prints a line (the task's log). */
  log: (message: string) => void;
  hashPool?: HashPool;
  signal?: AbortSignal;
  /** Candidates verified at once. Default 4. */
  concurrency?: number;
}

/**
 * Reconciles, prints and (in a run) records. Returns the reconciliation, or `null` when there
 * is nothing to reconcile (no copies configured, or items not known yet).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const bytes = new TextEncoder().encode("the bytes of 00042.png");
 *   const md5 = createHash("md5").update(bytes).digest("hex");
 *   const item = {
 *     id: "42",
 *     path: "images1024x1024/00000/00042.png",
 *     size: bytes.length,
 *     md5,
 *     pixel_size: null,
 *     pixel_md5: null,
 *   };
 *   await Deno.mkdir(`${dir}/copy`);
 *   await Deno.writeFile(`${dir}/copy/00042.png`, bytes);
 *   await Deno.writeTextFile(`${dir}/copy/notes.txt`, "mine");
 *   const lines: string[] = [];
 *   const r = await summarizeAdoption({
 *     paths: [`${dir}/copy`],
 *     items: [item],
 *     recorded: new Map(),
 *     stored: () => Promise.resolve(false),
 *     planned: true,
 *     cacheDir: `${dir}/cache`,
 *     log: (line) => lines.push(line),
 *   });
 *   assert.deepEqual(r?.adopted_bytes, ["42"]);
 *   assert.equal(r?.counts.extra, 1);
 *   assert.ok(lines.length > 0);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function summarizeAdoption(
  options: AdoptionSummaryOptions,
): Promise<Reconciliation | null> {
  const { paths, items, planned, cacheDir, log } = options;
  if (paths.length === 0) {
    // A reconciliation from an earlier config would otherwise outlive its copies.
    if (!planned) await forgetReconciliation(cacheDir);
    return null;
  }
  if (items === null) {
    log(
      "reconciliation with dataset.adopt: known once fetch-json has run (the spec lists the " +
        "items); run `deno task run fetch-json` first to see it in a plan",
    );
    return null;
  }
  const r = await reconcileCopies({ ...options, items });
  log(formatReconciliation(r));
  if (!planned) await recordReconciliation(cacheDir, r);
  return r;
}

/**
 * The reconciliation of the copies `paths` with the spec items `items`: what each item
 * recorded, and for the others, the same verification a run makes, read-only (what
 * {@link summarizeAdoption} prints; `package` states it in the dataset).
 */
export async function reconcileCopies(
  options: Omit<AdoptionSummaryOptions, "log" | "cacheDir" | "items"> & {
    items: readonly AdoptItem[];
  },
): Promise<Reconciliation> {
  const { paths, items, recorded, planned, signal } = options;
  const own = options.sources ? null : await AdoptSources.open(paths);
  const sources = options.sources ?? own!;
  try {
    const outcomes = new Map<string, ItemOutcome>();
    const unsettled: AdoptItem[] = [];
    for (const item of items) {
      if (!recorded.has(item.id)) unsettled.push(item);
      else {
        const outcome = recorded.get(item.id);
        if (outcome) outcomes.set(item.id, outcome);
      }
    }
    // A plan hashes on threads of its own, as a run does on the task's.
    const ownPool = unsettled.length && !options.hashPool ? new HashPool({ workers: 2 }) : null;
    const hashPool = options.hashPool ?? ownPool ?? undefined;
    let next = 0;
    const worker = async () => {
      while (next < unsettled.length) {
        const item = unsettled[next++];
        if (sources.candidates(item).length === 0 || await options.stored(item)) continue;
        const got = await sources.adopt(item, { hashPool, signal });
        if (got.adopted) {
          outcomes.set(item.id, { adopted: got.adopted.by, file: got.adopted.verdict.file });
        } else outcomes.set(item.id, { rejected: got.rejected });
      }
    };
    try {
      await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
    } finally {
      ownPool?.close();
    }
    return reconcile({ items, spec: options.spec, sources, outcomes, planned });
  } finally {
    own?.close();
  }
}

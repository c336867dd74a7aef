/**
 * The reconciliation of local copies with the spec: which items were adopted (by bytes, by
 * pixels), which files were rejected and why, which items the copies lack, and which files
 * are not in the spec — exact id lists, so "the counts differ" becomes a list. Built by one
 * function for a plan and a run alike, printed at the end of fetch-images, kept as the last
 * run's record for `status --json`, and written into `manifest.json` and `report.html`.
 *
 * @module
 */
import { join } from "node:path";
import type { AdoptSources } from "./adopt.ts";
import type { AdoptItem } from "./adopt_check.ts";
import { writeFileAtomic } from "../store/objects.ts";

/** What happened to one item, as fetch-images records it (`adopt` in its output metadata). */
export type ItemOutcome =
  | { adopted: "bytes" | "pixels"; file: string }
  | { rejected: { file: string; reason: string }[] };

/** The reconciliation. */
export interface Reconciliation {
  format: "latentforge.reconciliation/1";
  /** `true` for what a plan (`run --dry-run`) found; `false` for what a run did. */
  planned: boolean;
  /** When it was made (ISO 8601). */
  at: string;
  /** The copies, as absolute paths. */
  sources: string[];
  /** sha256 of the copies' listing (names, sizes, times). */
  listing: string;
  /** Files in the copies. */
  files: number;
  /** Per copy (in `sources` order): its files, and how many items were adopted from it. */
  per_source: { source: string; files: number; adopted: number }[];
  /** Spec items reconciled. */
  items: number;
  counts: {
    adopted_bytes: number;
    adopted_pixels: number;
    rejected: number;
    missing: number;
    extra: number;
    stored_before: number;
  };
  /** Ids whose file had the spec's size and MD5. */
  adopted_bytes: string[];
  /** Ids whose file had other bytes but the spec's decoded pixels. */
  adopted_pixels: { id: string; file: string }[];
  /** Files that were not taken, by item (an item may have several). */
  rejected: { id: string; file: string; reason: string }[];
  /** Ids no file of the copies holds. */
  missing: string[];
  /** Files of the copies that are not in the spec. */
  extra: string[];
  /** Ids already in the store before adopting, whose copies were not read. */
  stored_before: string[];
}

/** Options of {@link reconcile}. */
export interface ReconcileOptions {
  /** The spec items handled (after `--limit`). */
  items: readonly AdoptItem[];
  /** Every spec item, for telling extra files (default: `items`). */
  spec?: readonly AdoptItem[];
  /** The opened copies. */
  sources: AdoptSources;
  /** What happened to each item; an item without one was in the store already. */
  outcomes: ReadonlyMap<string, ItemOutcome>;
  planned: boolean;
}

/**
 * Builds the reconciliation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { AdoptSources } from "./adopt.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const bytes = new TextEncoder().encode("the bytes of 00042.png");
 *   const md5 = createHash("md5").update(bytes).digest("hex");
 *   const path = "images1024x1024/00000/00042.png";
 *   const item = { id: "42", path, size: bytes.length, md5, pixel_size: null, pixel_md5: null };
 *   await Deno.mkdir(`${dir}/copy`);
 *   await Deno.writeFile(`${dir}/copy/00042.png`, bytes);
 *   const sources = await AdoptSources.open([`${dir}/copy`]);
 *   const outcomes = new Map<string, ItemOutcome>([["42", { adopted: "bytes", file: `${dir}/copy/00042.png` }]]);
 *   const r = reconcile({ items: [item], sources, outcomes, planned: false });
 *   sources.close();
 *   assert.deepEqual(r.adopted_bytes, ["42"]);
 *   assert.equal(r.counts.missing, 0);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export function reconcile(
  { items, spec = items, sources, outcomes, planned }: ReconcileOptions,
): Reconciliation {
  const adoptedBytes: string[] = [];
  const adoptedPixels: Reconciliation["adopted_pixels"] = [];
  const rejected: Reconciliation["rejected"] = [];
  const missing: string[] = [];
  const storedBefore: string[] = [];
  let rejectedItems = 0;
  for (const item of items) {
    const outcome = outcomes.get(item.id);
    if (outcome && "adopted" in outcome) {
      if (outcome.adopted === "bytes") adoptedBytes.push(item.id);
      else adoptedPixels.push({ id: item.id, file: outcome.file });
    } else if (outcome && outcome.rejected.length > 0) {
      rejectedItems++;
      for (const r of outcome.rejected) rejected.push({ id: item.id, ...r });
    } else if (sources.candidates(item).length === 0) {
      missing.push(item.id);
    } else {
      storedBefore.push(item.id);
    }
  }
  const extra = sources.extras(spec).map((f) => f.label);
  const perSource = sources.paths.map((source, i) => ({
    source,
    files: sources.files.filter((f) => sourceOf(sources, f.label) === i).length,
    adopted: 0,
  }));
  for (const outcome of outcomes.values()) {
    if (!("adopted" in outcome)) continue;
    const i = sourceOf(sources, outcome.file);
    if (i >= 0) perSource[i].adopted++;
  }
  return {
    format: "latentforge.reconciliation/1",
    planned,
    at: new Date().toISOString(),
    sources: sources.paths,
    listing: sources.fingerprint,
    files: sources.files.length,
    per_source: perSource,
    items: items.length,
    counts: {
      adopted_bytes: adoptedBytes.length,
      adopted_pixels: adoptedPixels.length,
      rejected: rejectedItems,
      missing: missing.length,
      extra: extra.length,
      stored_before: storedBefore.length,
    },
    adopted_bytes: adoptedBytes,
    adopted_pixels: adoptedPixels,
    rejected,
    missing,
    extra,
    stored_before: storedBefore,
  };
}

/** Which copy a file label belongs to (a folder's files, or `archive.zip!entry`), or -1. */
function sourceOf(sources: AdoptSources, label: string): number {
  return sources.paths.findIndex((p) => label.startsWith(`${p}/`) || label.startsWith(`${p}!`));
}

const SHOWN = 8;

/**
 * The reconciliation as the lines printed at the end of fetch-images (and by a plan): counts,
 * with the first few ids, files and reasons of each list.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHash } from "node:crypto";
 * import { AdoptSources } from "./adopt.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const bytes = new TextEncoder().encode("the bytes of 00042.png");
 *   const md5 = createHash("md5").update(bytes).digest("hex");
 *   const path = "images1024x1024/00000/00042.png";
 *   const item = { id: "42", path, size: bytes.length, md5, pixel_size: null, pixel_md5: null };
 *   await Deno.mkdir(`${dir}/copy`);
 *   await Deno.writeFile(`${dir}/copy/00042.png`, bytes);
 *   const sources = await AdoptSources.open([`${dir}/copy`]);
 *   const outcomes = new Map<string, ItemOutcome>([["42", { adopted: "bytes", file: `${dir}/copy/00042.png` }]]);
 *   const r = reconcile({ items: [item], sources, outcomes, planned: false });
 *   sources.close();
 *   const text = formatReconciliation(r);
 *   assert.match(text, /with 1 local copy \(1 files\): adopted 1, downloaded or failed 0/);
 *   assert.match(text, /copy \(1 files\): 1 adopted/);
 *   assert.match(text, /adopted by bytes +1 +42/);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export function formatReconciliation(r: Reconciliation): string {
  const n = (x: number) => x.toLocaleString("en-US");
  const c = r.counts;
  const width = Math.max(...Object.values(c).map((x) => n(x).length));
  const row = (label: string, count: number, detail = "") =>
    `  ${label.padEnd(20)}${n(count).padStart(width)}${detail ? `   ${detail}` : ""}`;
  const some = (ids: string[]) =>
    ids.length === 0 ? "" : ids.slice(0, SHOWN).join(", ") + (ids.length > SHOWN ? ", …" : "");
  const lines = [
    `reconciliation of ${n(r.items)} spec items with ${r.sources.length} local ${
      r.sources.length === 1 ? "copy" : "copies"
    } (${n(r.files)} files): ${r.planned ? "would adopt" : "adopted"} ${
      n(c.adopted_bytes + c.adopted_pixels)
    }, ${r.planned ? "would download" : "downloaded or failed"} ${n(c.rejected + c.missing)}`,
    ...r.per_source.map((s) => `  from ${s.source} (${n(s.files)} files): ${n(s.adopted)} adopted`),
    row("adopted by bytes", c.adopted_bytes, some(r.adopted_bytes)),
    row("adopted by pixels", c.adopted_pixels, some(r.adopted_pixels.map((p) => p.id))),
    row("rejected", c.rejected, rejectedSummary(r)),
  ];
  for (const x of r.rejected.slice(0, SHOWN)) lines.push(`      ${x.id}: ${x.file}: ${x.reason}`);
  if (r.rejected.length > SHOWN) lines.push(`      … ${n(r.rejected.length - SHOWN)} more`);
  lines.push(row("missing", c.missing, some(r.missing)));
  lines.push(row("extra", c.extra, some(r.extra)));
  if (c.stored_before > 0) {
    lines.push(
      row("in the store before", c.stored_before, "already stored; their copies were not read"),
    );
  }
  lines.push(
    r.planned
      ? "  (the full lists: the run records them for `status --json` and manifest.json)"
      : "  (the full lists: `status --json`, and manifest.json once packaged)",
  );
  return lines.join("\n");
}

/** "12 resized, 3 truncated, 2 JPEG" from the reasons. */
function rejectedSummary(r: Reconciliation): string {
  const kinds = new Map<string, number>();
  for (const x of r.rejected) {
    const kind = /spec says \d+×\d+/.test(x.reason)
      ? "with another pixel size"
      : x.reason.startsWith("truncated")
      ? "truncated"
      : x.reason.startsWith("a JPEG")
      ? "JPEG"
      : x.reason.startsWith("other pixels")
      ? "other pixels"
      : x.reason.startsWith("not a decodable")
      ? "undecodable"
      : "unreadable";
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return [...kinds].map(([k, v]) => `${v} ${k}`).join(", ");
}

/** Where a run keeps its reconciliation for `status --json` and `package`. */
function recordPath(cacheDir: string): string {
  return join(cacheDir, "reports", "reconciliation.json");
}

/**
 * Keeps a run's reconciliation in the cache (written atomically), replacing the previous one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AdoptSources } from "./adopt.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const sources = await AdoptSources.open([dir]);
 *   const r = reconcile({ items: [], sources, outcomes: new Map(), planned: false });
 *   sources.close();
 *   await recordReconciliation(`${dir}/cache`, r);
 *   assert.deepEqual(await lastReconciliation(`${dir}/cache`), r);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function recordReconciliation(cacheDir: string, r: Reconciliation): Promise<void> {
  await Deno.mkdir(join(cacheDir, "reports"), { recursive: true });
  await writeFileAtomic(recordPath(cacheDir), new TextEncoder().encode(JSON.stringify(r)));
}

/**
 * Drops the kept reconciliation (a run without local copies to adopt).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AdoptSources } from "./adopt.ts";
 * const dir = await Deno.makeTempDir();
 * try {
 *   const sources = await AdoptSources.open([dir]);
 *   const r = reconcile({ items: [], sources, outcomes: new Map(), planned: false });
 *   sources.close();
 *   await recordReconciliation(`${dir}/cache`, r);
 *   await forgetReconciliation(`${dir}/cache`);
 *   assert.equal(await lastReconciliation(`${dir}/cache`), null);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function forgetReconciliation(cacheDir: string): Promise<void> {
  try {
    await Deno.remove(recordPath(cacheDir));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/**
 * The last run's reconciliation, or `null` when no run adopted from local copies.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   // No run has adopted anything with this cache.
 *   assert.equal(await lastReconciliation(dir), null);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export async function lastReconciliation(cacheDir: string): Promise<Reconciliation | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(recordPath(cacheDir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  const r = JSON.parse(text) as Reconciliation;
  return r?.format === "latentforge.reconciliation/1" ? r : null;
}

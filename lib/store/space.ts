/**
 * Free space against what a run is about to write: as a run queues each action it will
 * compute, the bytes that action will store are estimated — a download's size when the item
 * declares it (FFHQ's spec does), else the mean size of what the task's recorded actions stored
 * — and once the total passes the free space of the cache's disk the user is warned, once,
 * before the disk fills. The run goes on: it stops cleanly (exit code 3) if the disk does fill.
 *
 * @module
 */
import type { Json } from "./canonical.ts";
import type { ObjectStore } from "./objects.ts";
import { formatBytes } from "../base/bytes.ts";
import { freeBytes } from "./systemic.ts";

/** Records sampled per task to estimate what one action stores. */
const SAMPLE = 16;

/** Estimates the bytes a run will store and warns once when they exceed the free space. */
export class SpaceCheck {
  readonly #store: ObjectStore;
  readonly #warn: (message: string) => void;
  readonly #free: number | null;
  readonly #perItem = new Map<string, number>();
  readonly #needed = new Map<string, { items: number; bytes: number }>();
  #total = 0;
  #warned = false;

  /**
   * @param store the run's object store (its disk is the one checked)
   * @param warn called once, with the warning, when the estimate passes the free space
   */
  constructor(store: ObjectStore, warn: (message: string) => void) {
    this.#store = store;
    this.#warn = warn;
    this.#free = freeBytes(store.root)?.free ?? null;
  }

  /**
   * Notes one action of `task` that will run. `params` may declare its size (`{ size }`);
   * `recorded` gives the output digests of the task's recorded actions, to estimate from.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ObjectStore } from "./objects.ts";
   *
   * const cache = await Deno.makeTempDir();
   * const warnings: string[] = [];
   * const space = new SpaceCheck(new ObjectStore(cache), (m) => warnings.push(m));
   * space.expect("fetch-images", { md5: "…", size: 1_400_000 }, () => []);
   * assert.equal(warnings.length, 0);
   * space.expect("fetch-images", { md5: "…", size: 1e18 }, () => []); // more than any disk holds
   * assert.match(warnings[0], /^the cache's disk may fill up/);
   * await Deno.remove(cache, { recursive: true });
   * ```
   */
  expect(task: string, params: Json | undefined, recorded: () => string[][]): void {
    if (this.#warned || this.#free === null) return;
    const declared = params !== null && typeof params === "object" && !Array.isArray(params)
      ? params.size
      : undefined;
    const bytes = typeof declared === "number" ? declared : this.#estimate(task, recorded);
    const sum = this.#needed.get(task) ?? { items: 0, bytes: 0 };
    sum.items++;
    sum.bytes += bytes;
    this.#needed.set(task, sum);
    this.#total += bytes;
    if (this.#total <= this.#free) return;
    this.#warned = true;
    const parts = [...this.#needed].filter(([, n]) => n.bytes > 0)
      .map(([t, n]) => `${t} ${n.items} item${n.items > 1 ? "s" : ""}, ~${formatBytes(n.bytes)}`);
    this.#warn(
      `the cache's disk may fill up: this run will store at least ~${formatBytes(this.#total)} ` +
        `(${parts.join("; ")}) in ${this.#store.root}, and ${formatBytes(this.#free)} are ` +
        `free. The run goes on and, if the disk fills, stops with exit code 3 keeping what it ` +
        `finished; free space (deno task gc) or use a --cache on a larger disk`,
    );
  }

  /** Mean bytes the task's recorded actions stored (0 when it has none recorded yet). */
  #estimate(task: string, recorded: () => string[][]): number {
    let mean = this.#perItem.get(task);
    if (mean === undefined) {
      const sample = recorded().slice(0, SAMPLE);
      let total = 0;
      for (const digests of sample) {
        for (const d of digests) {
          try {
            total += Deno.statSync(this.#store.path(d)).size;
          } catch (e) {
            // Gone (gc, quarantine): it adds nothing to the estimate.
            if (!(e instanceof Deno.errors.NotFound)) throw e;
          }
        }
      }
      mean = sample.length ? total / sample.length : 0;
      this.#perItem.set(task, mean);
    }
    return mean;
  }
}

/**
 * Joining per-item streams: a task that follows several per-item tasks gets an item once
 * every one of them has produced it, in the order the last of them did.
 *
 * @module
 */
import type { Output } from "../store/records.ts";

/** One item's output as it flows from task to task, with the digest its dependants key on. */
export interface Produced {
  out: Output;
  digest: string;
  /** The key of the action whose record gave a cached output (ran outputs' keys are kept apart). */
  key?: string;
}

/** Action keys by item, where known. */
export interface KeyLookup {
  get(id: string): string | undefined;
  has(id: string): boolean;
}

/** A per-item task whose results can be followed. */
export interface ItemStream {
  readonly name: string;
  /** Calls `listener` for every item produced from now on. */
  subscribe(listener: (id: string, p: Produced) => void): void;
}

/**
 * Calls `onItem` once per item that every stream has produced, with each stream's output and
 * digest by stream name. An item waits here only until the last stream produces it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const stream = (name: string, ids: string[]): ItemStream => ({
 *   name,
 *   subscribe: (listener) => {
 *     for (const id of ids) listener(id, { out: { objects: {}, meta: id }, digest: `${name}-${id}` });
 *   },
 * });
 * const joined: string[] = [];
 * joinItems([stream("encode", ["1", "2"]), stream("preprocess", ["2", "3"])], (id, _, digests) =>
 *   joined.push(`${id}: ${digests.encode} ${digests.preprocess}`));
 * assert.deepEqual(joined, ["2: encode-2 preprocess-2"]); // only what both produced
 * ```
 */
export function joinItems(
  streams: ItemStream[],
  onItem: (id: string, outs: Record<string, Output>, digests: Record<string, string>) => void,
): void {
  const arrived = new Map<
    string,
    { outs: Record<string, Output>; digests: Record<string, string> }
  >();
  for (const stream of streams) {
    stream.subscribe((id, p) => {
      if (streams.length === 1) {
        onItem(id, { [stream.name]: p.out }, { [stream.name]: p.digest });
        return;
      }
      const got = arrived.get(id) ?? { outs: {}, digests: {} };
      got.outs[stream.name] = p.out;
      got.digests[stream.name] = p.digest;
      if (Object.keys(got.outs).length === streams.length) {
        arrived.delete(id);
        onItem(id, got.outs, got.digests);
      } else {
        arrived.set(id, got);
      }
    });
  }
}

/** An item every followed stream has produced, with outputs and digests by stream name. */
export type Joined = [id: string, outs: Record<string, Output>, digests: Record<string, string>];

/**
 * Follows per-item streams from before anything flows: items joined before the follower is
 * ready to take them wait in a queue, then flow straight to it. A follower that will take none
 * (it was blocked) drops them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * let emit: (id: string) => void = () => {};
 * const stream: ItemStream = {
 *   name: "scale",
 *   subscribe: (l) => emit = (id) => l(id, { out: { objects: {}, meta: id }, digest: id }),
 * };
 * const queue = new FollowQueue([stream]);
 * emit("1");
 * const got: string[] = [];
 * queue.start((id) => got.push(id));
 * emit("2");
 * assert.deepEqual(got, ["1", "2"]);
 * ```
 */
export class FollowQueue {
  #early: Joined[] | null = [];
  #take: ((...joined: Joined) => void) | null = null;

  constructor(streams: ItemStream[]) {
    joinItems(streams, (...joined) => {
      if (this.#take) this.#take(...joined);
      else this.#early?.push(joined);
    });
  }

  /** Hands the items that came so far to `take`, then every later one as it comes. */
  start(take: (...joined: Joined) => void): void {
    const early = this.#early ?? [];
    this.#early = null;
    this.#take = take;
    for (const joined of early) take(...joined);
  }

  /** Drops what came and what will come. */
  drop(): void {
    this.#early = null;
  }
}

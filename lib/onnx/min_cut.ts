/**
 * A flow network and its minimum cut, for the choice of which forward values the backward pass
 * keeps (`recompute.ts`).
 *
 * @module
 */
import { GraphError } from "./errors.ts";

/**
 * Max flow by Dinic's algorithm on a small graph with float capacities, and the minimum cut it
 * leaves.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * // source 0 → 1 → sink 3 and 0 → 2 → 3: the narrow edges 1 → 3 and 0 → 2 make the cut.
 * const net = new FlowNetwork(4);
 * net.edge(0, 1, 5);
 * net.edge(1, 3, 1);
 * net.edge(0, 2, 2);
 * net.edge(2, 3, 9);
 * assert.deepEqual([...net.minCut(0, 3)], [1, 1, 0, 0]);
 * ```
 */
export class FlowNetwork {
  readonly #head: number[][];
  readonly #to: number[] = [];
  readonly #cap: number[] = [];

  constructor(nodes: number) {
    this.#head = Array.from({ length: nodes }, () => []);
  }

  /** Adds an edge `from` → `to` of capacity `cap`. */
  edge(from: number, to: number, cap: number): void {
    this.#head[from].push(this.#to.length);
    this.#to.push(to);
    this.#cap.push(cap);
    this.#head[to].push(this.#to.length);
    this.#to.push(from);
    this.#cap.push(0);
  }

  #levels(source: number): Int32Array {
    const level = new Int32Array(this.#head.length).fill(-1);
    level[source] = 0;
    const queue = [source];
    for (let q = 0; q < queue.length; q++) {
      const u = queue[q];
      for (const e of this.#head[u]) {
        const v = this.#to[e];
        if (this.#cap[e] > 0 && level[v] < 0) {
          level[v] = level[u] + 1;
          queue.push(v);
        }
      }
    }
    return level;
  }

  /**
   * Runs max flow and returns, per node, whether it is on the source side of the minimum cut
   * nearest the sink (of several cuts of equal size, the one that recomputes least).
   */
  minCut(source: number, sink: number): Uint8Array {
    for (;;) {
      const level = this.#levels(source);
      if (level[sink] < 0) return this.#notReaching(sink);
      const next = new Int32Array(this.#head.length);
      for (;;) {
        const pushed = this.#push(source, sink, Infinity, level, next);
        if (pushed === 0) break;
        if (!Number.isFinite(pushed)) {
          throw new GraphError("minimum cut: an infinite path joins the source and the sink");
        }
      }
    }
  }

  /** Marks with 1 the nodes that cannot reach `sink` through edges with capacity left. */
  #notReaching(sink: number): Uint8Array {
    const side = new Uint8Array(this.#head.length).fill(1);
    side[sink] = 0;
    const queue = [sink];
    for (let q = 0; q < queue.length; q++) {
      for (const e of this.#head[queue[q]]) {
        const u = this.#to[e];
        if (side[u] && this.#cap[e ^ 1] > 0) {
          side[u] = 0;
          queue.push(u);
        }
      }
    }
    return side;
  }

  #push(u: number, sink: number, limit: number, level: Int32Array, next: Int32Array): number {
    if (u === sink) return limit;
    const edges = this.#head[u];
    for (; next[u] < edges.length; next[u]++) {
      const e = edges[next[u]];
      const v = this.#to[e];
      if (this.#cap[e] <= 0 || level[v] !== level[u] + 1) continue;
      const got = this.#push(v, sink, Math.min(limit, this.#cap[e]), level, next);
      if (got > 0) {
        this.#cap[e] -= got;
        this.#cap[e ^ 1] += got;
        return got;
      }
    }
    return 0;
  }
}

/**
 * What the process is waiting for, by name: a host's quota back-off, a retry's delay, another
 * run holding the cache. Whoever waits says so on the {@link waits} board for as long as it
 * waits; the progress displays read the board, so a wait of minutes is named every few seconds
 * instead of looking like a hang.
 *
 * @module
 */

/** A wait on the board; {@link Wait.end} takes it off (once; later calls do nothing). */
export interface Wait {
  readonly text: string;
  end(): void;
}

/**
 * The waits going on now, in the order they began.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const board = new WaitBoard();
 * const seen: number[] = [];
 * const stop = board.subscribe(() => seen.push(board.current().length));
 * const wait = board.begin("example.org: quota exceeded at 06:27, next try 06:37");
 * assert.deepEqual(board.current(), ["example.org: quota exceeded at 06:27, next try 06:37"]);
 * wait.end();
 * assert.deepEqual(board.current(), []);
 * assert.deepEqual(seen, [1, 0]);
 * stop();
 * ```
 */
export class WaitBoard {
  readonly #waits = new Set<{ text: string }>();
  readonly #listeners = new Set<() => void>();

  /** Puts a wait on the board until its `end()`. */
  begin(text: string): Wait {
    const entry = { text };
    this.#waits.add(entry);
    this.#changed();
    return {
      text,
      end: () => {
        if (this.#waits.delete(entry)) this.#changed();
      },
    };
  }

  /** Runs `fn` while `text` is on the board. */
  async during<T>(text: string, fn: () => Promise<T>): Promise<T> {
    const wait = this.begin(text);
    try {
      return await fn();
    } finally {
      wait.end();
    }
  }

  /** The waits going on, each text once (many callers may wait for one host). */
  current(): string[] {
    return [...new Set([...this.#waits].map((w) => w.text))];
  }

  /** Calls `fn` whenever a wait begins or ends; returns what stops that. */
  subscribe(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #changed(): void {
    for (const fn of this.#listeners) fn();
  }
}

/** The process's board. */
export const waits: WaitBoard = new WaitBoard();

/**
 * A clock time as the log lines stamp theirs (UTC), to the minute: `06:27`; to the second when
 * `seconds` is true.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(timeOfDay(Date.UTC(2026, 0, 1, 6, 27, 40)), "06:27");
 * assert.equal(timeOfDay(Date.UTC(2026, 0, 1, 6, 27, 40), true), "06:27:40");
 * ```
 */
export function timeOfDay(ms: number, seconds = false): string {
  return new Date(ms).toISOString().slice(11, seconds ? 19 : 16);
}

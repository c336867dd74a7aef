/**
 * The terminal's display: log lines scroll above live lines, one per active task (done/total,
 * rate, ETA, failures; steps for a task whose items report them) and one per wait going on,
 * redrawn a few times a second.
 *
 * @module
 */
import { type WaitBoard, waits as processWaits } from "../base/waits.ts";
import type { Reporter, RunEvent, TaskCounts } from "./events.ts";
import { describeEvent, formatSeconds, stepsText } from "./progress_lines.ts";
import { StepMeter } from "./progress_steps.ts";

const encoder = new TextEncoder();

/** Options of {@link TtyReporter}. */
export interface TtyReporterOptions {
  /** Where the lines go. Default: stderr. */
  write?: (text: string) => void;
  /** Milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
  /** What is being waited for. Default: the process's board. */
  waits?: WaitBoard;
  /** Milliseconds between redraws; 0 redraws only when a line is printed. Default 200. */
  redrawMs?: number;
}

interface Active {
  counts: TaskCounts;
  started: number;
  ended: boolean;
}

/**
 * Live lines on a terminal.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WaitBoard } from "../base/waits.ts";
 *
 * let out = "";
 * let t = 0;
 * const tty = new TtyReporter({
 *   write: (s) => out += s, now: () => t, waits: new WaitBoard(), redrawMs: 0,
 * });
 * tty.emit({ event: "task-start", task: "optimize" });
 * tty.progress("optimize", { total: 8, ran: 0, cached: 0, failed: 0, final: true });
 * tty.steps("optimize", "a", 0, 60);
 * t = 10_000;
 * tty.steps("optimize", "a", 30, 60);
 * tty.emit({ event: "log", task: "optimize", message: "hello" });
 * assert.match(out, /optimize +0\/8 images · step 30\/480 · 3\.0 steps\/s · eta/);
 * tty.close();
 * ```
 */
export class TtyReporter implements Reporter {
  readonly #tasks = new Map<string, Active>();
  readonly #steps = new StepMeter();
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  readonly #waits: WaitBoard;
  readonly #unsubscribe: () => void;
  #drawn = 0;
  #plan = false;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    {
      write = (s) => Deno.stderr.writeSync(encoder.encode(s)),
      now = Date.now,
      waits = processWaits,
      redrawMs = 200,
    }: TtyReporterOptions = {},
  ) {
    this.#write = write;
    this.#now = now;
    this.#waits = waits;
    this.#unsubscribe = waits.subscribe(() => this.#draw());
    if (redrawMs > 0) {
      const timer = setInterval(() => this.#draw(), redrawMs);
      Deno.unrefTimer(Number(timer));
      this.#timer = timer;
    }
  }

  emit(event: RunEvent): void {
    if (event.event === "run-start") this.#plan = event.dryRun;
    if (event.event === "task-start") {
      this.#tasks.set(event.task, {
        counts: { total: 0, ran: 0, cached: 0, failed: 0, final: false },
        started: this.#now(),
        ended: false,
      });
    }
    if (event.event === "item") this.#steps.finish(event.task, event.item, this.#now());
    if (event.event === "task-end") {
      const t = this.#tasks.get(event.task);
      if (t) {
        t.counts = event.counts;
        t.ended = true;
      }
      this.#steps.end(event.task);
    }
    // A finished item is in the live line; a line each would scroll the terminal away.
    if (event.event === "item" && event.status === "ran") return;
    const line = describeEvent(event, this.#now(), this.#plan);
    if (line) this.#print(line);
  }

  progress(task: string, counts: TaskCounts): void {
    const t = this.#tasks.get(task);
    if (t) t.counts = { ...counts };
  }

  steps(task: string, item: string, done: number, budget: number): void {
    this.#steps.report(task, item, done, budget, this.#now());
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#unsubscribe();
    this.#clear();
  }

  #print(line: string): void {
    this.#clear();
    this.#write(line + "\n");
    this.#draw();
  }

  #clear(): void {
    if (this.#drawn > 0) this.#write(`\x1b[${this.#drawn}F\x1b[J`);
    this.#drawn = 0;
  }

  #draw(): void {
    this.#clear();
    const now = this.#now();
    const lines: string[] = [];
    for (const [name, t] of this.#tasks) {
      if (!t.ended) lines.push(`  ${name.padEnd(13)} ${this.#line(name, t, now)}`);
    }
    for (const wait of this.#waits.current()) lines.push(`  waiting: ${wait}`);
    if (lines.length) this.#write(lines.join("\n") + "\n");
    this.#drawn = lines.length;
  }

  #line(name: string, t: Active, now: number): string {
    const c = t.counts;
    const steps = this.#steps.figures(name, c, now);
    const failed = c.failed ? ` \x1b[31m${c.failed} failed\x1b[0m` : "";
    if (steps) return stepsText(c, steps);
    const done = c.ran + c.cached + c.failed;
    const seconds = (now - t.started) / 1000;
    const rate = seconds > 0 ? c.ran / seconds : 0;
    const eta = rate > 0 && c.final ? ` eta ${formatSeconds((c.total - done) / rate)}` : "";
    const total = c.final ? `${c.total}` : `${c.total}+`;
    return `${done}/${total}  ${rate.toFixed(1)}/s${eta}${failed}`;
  }
}

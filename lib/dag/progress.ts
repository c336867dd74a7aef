/**
 * Progress displays: live lines on a terminal, plain log lines otherwise, JSON lines for scripts.
 *
 * Without a terminal (a log file, a pipe, `--json`) the output is never silent for longer than
 * {@link HEARTBEAT_MS} while a run goes on: when nothing was written for that long, a progress
 * line per active task is (done/total, rate, how long it has been running), so a slow stage —
 * one optimize batch can take minutes — does not look like a hang.
 *
 * @module
 */
import type { Reporter, RunEvent, TaskCounts } from "./events.ts";

const encoder = new TextEncoder();

function stderr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

function stdout(text: string): void {
  Deno.stdout.writeSync(encoder.encode(text));
}

/** The longest silence of the plain and JSON outputs during a run, in milliseconds. */
export const HEARTBEAT_MS = 10_000;

/** Time and timers as the reporters use them; tests inject a fake one. */
export interface ProgressClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `ms`; must not keep the process alive. */
  setTimeout(fn: () => void, ms: number): number;
  clearTimeout(id: number): void;
}

/** The real clock; its timers do not keep a finished process alive. */
export const systemClock: ProgressClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const id = Number(setTimeout(fn, ms));
    Deno.unrefTimer(id);
    return id;
  },
  clearTimeout: (id) => clearTimeout(id),
};

/** Options of {@link PlainReporter} and {@link JsonReporter}. */
export interface StreamReporterOptions {
  /** Where lines go. Default: stderr (plain), stdout (JSON). */
  write?: (text: string) => void;
  /** Default {@link systemClock}. */
  clock?: ProgressClock;
  /** Longest silence in milliseconds. Default {@link HEARTBEAT_MS}. */
  heartbeatMs?: number;
}

/**
 * The JSON line written when nothing else was for {@link HEARTBEAT_MS}: one per active task, or
 * one with `task: null` while no task is active (between two tasks).
 */
export interface ProgressEvent {
  event: "progress";
  task: string | null;
  counts?: TaskCounts;
  /** Seconds since the task started. */
  seconds?: number;
}

/**
 * Keeps track of the active tasks and calls `beat` whenever nothing was written for `ms`:
 * every write re-arms the timer, so no gap between two lines exceeds `ms`.
 */
class Heartbeat {
  readonly tasks = new Map<string, { counts: TaskCounts; started: number }>();
  readonly #clock: ProgressClock;
  readonly #ms: number;
  readonly #beat: () => void;
  #timer: number | undefined;
  #running = false;

  constructor(clock: ProgressClock, ms: number, beat: () => void) {
    this.#clock = clock;
    this.#ms = ms;
    this.#beat = beat;
  }

  observe(event: RunEvent): void {
    if (event.event === "run-start" && !event.dryRun) this.#running = true;
    if (event.event === "run-end") {
      this.#running = false;
      this.stop();
    }
    if (event.event === "task-start") {
      this.tasks.set(event.task, {
        counts: { total: 0, ran: 0, cached: 0, failed: 0, final: false },
        started: this.#clock.now(),
      });
    }
    if (event.event === "task-end") this.tasks.delete(event.task);
  }

  update(task: string, counts: TaskCounts): void {
    const t = this.tasks.get(task);
    if (t) t.counts = { ...counts };
  }

  /** Something was written: the next beat is due `ms` from now. */
  wrote(): void {
    this.stop();
    if (!this.#running) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#beat();
    }, this.#ms);
  }

  stop(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** One JSON event per line on stdout, and a `progress` event per active task when quiet. */
export class JsonReporter implements Reporter {
  readonly #write: (text: string) => void;
  readonly #clock: ProgressClock;
  readonly #heart: Heartbeat;

  constructor(
    { write = stdout, clock = systemClock, heartbeatMs = HEARTBEAT_MS }: StreamReporterOptions = {},
  ) {
    this.#write = write;
    this.#clock = clock;
    this.#heart = new Heartbeat(clock, heartbeatMs, () => this.#beat());
  }

  emit(event: RunEvent): void {
    this.#heart.observe(event);
    this.#line(event);
  }

  progress(task: string, counts: TaskCounts): void {
    this.#heart.update(task, counts);
  }

  close(): void {
    this.#heart.stop();
  }

  #beat(): void {
    const now = this.#clock.now();
    const lines = [...this.#heart.tasks].map(([task, t]): ProgressEvent => ({
      event: "progress",
      task,
      counts: { ...t.counts },
      seconds: (now - t.started) / 1000,
    }));
    // Between tasks (a finished one's records are flushed) there is still a run to report.
    if (lines.length === 0) lines.push({ event: "progress", task: null });
    for (const line of lines) this.#write(JSON.stringify(line) + "\n");
    this.#heart.wrote();
  }

  #line(event: RunEvent): void {
    this.#write(JSON.stringify(event) + "\n");
    this.#heart.wrote();
  }
}

/**
 * Plain log lines (not a terminal): failures, retries, logs, one line per finished task, and a
 * progress line per active task whenever nothing else was written for {@link HEARTBEAT_MS}.
 */
export class PlainReporter implements Reporter {
  readonly #write: (text: string) => void;
  readonly #clock: ProgressClock;
  readonly #heart: Heartbeat;

  constructor(
    { write = stderr, clock = systemClock, heartbeatMs = HEARTBEAT_MS }: StreamReporterOptions = {},
  ) {
    this.#write = write;
    this.#clock = clock;
    this.#heart = new Heartbeat(clock, heartbeatMs, () => this.#beat());
  }

  emit(event: RunEvent): void {
    this.#heart.observe(event);
    const line = describe(event, this.#clock.now());
    if (line) this.#print(line);
  }

  progress(task: string, counts: TaskCounts): void {
    this.#heart.update(task, counts);
  }

  close(): void {
    this.#heart.stop();
  }

  #beat(): void {
    const now = this.#clock.now();
    const lines = [...this.#heart.tasks].map(([task, t]) => {
      const seconds = (now - t.started) / 1000;
      const c = t.counts;
      const rate = seconds > 0 ? c.ran / seconds : 0;
      const left = c.total - c.ran - c.cached - c.failed;
      const eta = c.final && rate > 0 && left > 0 ? `, eta ${formatSeconds(left / rate)}` : "";
      const done = c.ran + c.cached + c.failed;
      const state = done === 0
        ? "no item finished yet"
        : `${countsText(c)} · ${rate.toFixed(rate < 1 ? 2 : 1)}/s${eta}`;
      return `${stamp(now)} ${task}: ${state} · running for ${formatSeconds(seconds)}`;
    });
    this.#print(lines.length ? lines.join("\n") : `${stamp(now)} still running`);
  }

  #print(line: string): void {
    this.#write(line + "\n");
    this.#heart.wrote();
  }
}

/** Live lines on a terminal: one per active task with done/total, rate, ETA and failures. */
export class TtyReporter implements Reporter {
  readonly #tasks = new Map<string, { counts: TaskCounts; started: number; ended: boolean }>();
  #drawn = 0;
  #timer: ReturnType<typeof setInterval>;

  constructor() {
    this.#timer = setInterval(() => this.#draw(), 200);
    Deno.unrefTimer(Number(this.#timer));
  }

  emit(event: RunEvent): void {
    if (event.event === "task-start") {
      this.#tasks.set(event.task, {
        counts: { total: 0, ran: 0, cached: 0, failed: 0, final: false },
        started: performance.now(),
        ended: false,
      });
    }
    if (event.event === "task-end") {
      const t = this.#tasks.get(event.task);
      if (t) {
        t.counts = event.counts;
        t.ended = true;
      }
    }
    const line = event.event === "item" && event.status === "ran"
      ? null
      : describe(event, Date.now());
    if (line && event.event !== "task-end") this.#print(line);
    if (event.event === "task-end") this.#print(line!);
  }

  progress(task: string, counts: TaskCounts): void {
    const t = this.#tasks.get(task);
    if (t) t.counts = { ...counts };
  }

  close(): void {
    clearInterval(this.#timer);
    this.#clear();
  }

  #print(line: string): void {
    this.#clear();
    stderr(line + "\n");
    this.#draw();
  }

  #clear(): void {
    if (this.#drawn > 0) stderr(`\x1b[${this.#drawn}F\x1b[J`);
    this.#drawn = 0;
  }

  #draw(): void {
    this.#clear();
    const lines: string[] = [];
    for (const [name, t] of this.#tasks) {
      if (t.ended) continue;
      const c = t.counts;
      const done = c.ran + c.cached + c.failed;
      const seconds = (performance.now() - t.started) / 1000;
      const rate = seconds > 0 ? c.ran / seconds : 0;
      const left = c.total - done;
      const eta = rate > 0 && c.final ? ` eta ${formatSeconds(left / rate)}` : "";
      const total = c.final ? `${c.total}` : `${c.total}+`;
      const failed = c.failed ? ` \x1b[31m${c.failed} failed\x1b[0m` : "";
      lines.push(
        `  ${name.padEnd(13)} ${done}/${total}  ${rate.toFixed(1)}/s${eta}${failed}`,
      );
    }
    if (lines.length) stderr(lines.join("\n") + "\n");
    this.#drawn = lines.length;
  }
}

/** The reporter for the current output: JSON, terminal, or plain. */
export function chooseReporter(json: boolean): Reporter {
  if (json) return new JsonReporter();
  return Deno.stderr.isTerminal() ? new TtyReporter() : new PlainReporter();
}

function describe(event: RunEvent, now: number): string | null {
  const stamp_ = () => stamp(now);
  switch (event.event) {
    case "run-start":
      return `${stamp_()} ${event.dryRun ? "plan" : "run"} ${event.run}: ${
        event.tasks.join(" → ")
      }`;
    case "task-start":
    case "plan":
      return null;
    case "item":
      return event.status === "failed"
        ? `${stamp_()} ${event.task} ${event.item} failed: ${event.reason}`
        : null;
    case "retry":
      return `${stamp_()} ${event.task} ${event.item} retry ${event.attempt} in ${
        formatSeconds(event.delayMs / 1000)
      }: ${event.reason}`;
    case "log":
      return `${stamp_()} ${event.task}: ${event.message}`;
    case "task-end": {
      const why = event.reason ? ` — ${event.reason}` : "";
      let text = `${stamp_()} ${event.task} ${event.status}: ${countsText(event.counts)}${why}`;
      if (event.wouldRun) {
        for (const [reason, n] of Object.entries(event.wouldRun)) {
          text += `\n    would run ${n}: ${reason}`;
        }
      }
      if (event.unlisted) text += `\n    may run all: its items are ${event.unlisted}`;
      for (const [reason, n] of Object.entries(event.mayRun ?? {})) {
        text += `\n    may run ${n}: ${reason}`;
      }
      return text;
    }
    case "run-end":
      return `${stamp_()} run ${event.run} ${event.status} in ${formatSeconds(event.seconds)}`;
  }
}

function countsText(c: TaskCounts): string {
  const parts = [`${c.ran} ran`, `${c.cached} cached`];
  if (c.failed) parts.push(`${c.failed} failed`);
  return `${c.ran + c.cached + c.failed}/${c.total}${c.final ? "" : "+"} (${parts.join(", ")})`;
}

function stamp(now: number): string {
  return new Date(now).toISOString().slice(11, 19);
}

/** "1h02m", "3m05s", "4.2s". */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

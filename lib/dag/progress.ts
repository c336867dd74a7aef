/**
 * Progress displays: live lines on a terminal (progress_tty.ts), plain log lines otherwise, JSON
 * lines for scripts.
 *
 * Without a terminal (a log file, a pipe, `--json`) the output is never silent for longer than
 * {@link HEARTBEAT_MS} while a run goes on or something is waited for: when nothing was written
 * for that long, a progress line per active task is (done/total, rate, how long it has been
 * running; steps, their rate and the ETA for a task whose items report steps), and one per wait
 * (a host's quota back-off, a retry's delay, another run holding the cache), so a slow stage —
 * one optimize batch can take minutes — does not look like a hang.
 *
 * @module
 */
import { type WaitBoard, waits as processWaits } from "../base/waits.ts";
import type { Reporter, RunEvent, TaskCounts } from "./events.ts";
import { countsText, describeEvent, formatSeconds, stamp, stepsText } from "./progress_lines.ts";
import { type StepFigures, StepMeter } from "./progress_steps.ts";
import { TtyReporter } from "./progress_tty.ts";

export { formatSeconds, TtyReporter };

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
  /** What is being waited for. Default: the process's board (lib/base/waits.ts). */
  waits?: WaitBoard;
}

/**
 * The JSON line written when nothing else was for {@link HEARTBEAT_MS}: one per active task, or
 * one with `task: null` while no task is active (between two tasks) or something is waited for.
 */
export interface ProgressEvent {
  event: "progress";
  task: string | null;
  counts?: TaskCounts;
  /** Seconds since the task started. */
  seconds?: number;
  /** For a task whose items report steps: steps done and in all, steps per second, ETA (s). */
  steps?: StepFigures;
  /** What is being waited for (on the `task: null` line). */
  waiting?: string[];
}

/** One active task as a heartbeat reports it. */
interface Active {
  task: string;
  counts: TaskCounts;
  seconds: number;
  steps?: StepFigures;
}

/**
 * Keeps track of the active tasks, their steps and the waits, and calls `beat` whenever nothing
 * was written for `ms` while a run goes on or something is waited for: every write re-arms the
 * timer, so no gap between two lines exceeds `ms`.
 */
class Heartbeat {
  readonly #tasks = new Map<string, { counts: TaskCounts; started: number }>();
  readonly #steps = new StepMeter();
  readonly #clock: ProgressClock;
  readonly #ms: number;
  readonly #beat: () => void;
  readonly waits: WaitBoard;
  readonly #unsubscribe: () => void;
  #timer: number | undefined;
  #running = false;
  /** The run is a plan: its last line says nothing ran. */
  plan = false;

  constructor(clock: ProgressClock, ms: number, waits: WaitBoard, beat: () => void) {
    this.#clock = clock;
    this.#ms = ms;
    this.#beat = beat;
    this.waits = waits;
    // A wait that begins while nothing else goes on starts the beat; the last one to end
    // outside a run stops it.
    this.#unsubscribe = waits.subscribe(() => {
      if (this.#timer === undefined || !this.#due()) this.wrote();
    });
  }

  observe(event: RunEvent): void {
    if (event.event === "run-start") {
      this.plan = event.dryRun;
      this.#running = !event.dryRun;
    }
    if (event.event === "run-end") this.#running = false;
    if (event.event === "task-start") {
      this.#tasks.set(event.task, {
        counts: { total: 0, ran: 0, cached: 0, failed: 0, final: false },
        started: this.#clock.now(),
      });
    }
    if (event.event === "item") this.#steps.finish(event.task, event.item, this.#clock.now());
    if (event.event === "task-end") {
      this.#tasks.delete(event.task);
      this.#steps.end(event.task);
    }
  }

  update(task: string, counts: TaskCounts): void {
    const t = this.#tasks.get(task);
    if (t) t.counts = { ...counts };
  }

  steps(task: string, item: string, done: number, budget: number): void {
    this.#steps.report(task, item, done, budget, this.#clock.now());
  }

  /** The active tasks now, with their steps. */
  active(): Active[] {
    const now = this.#clock.now();
    return [...this.#tasks].map(([task, t]) => ({
      task,
      counts: { ...t.counts },
      seconds: (now - t.started) / 1000,
      steps: this.#steps.figures(task, t.counts, now),
    }));
  }

  /** Something was written: the next beat is due `ms` from now. */
  wrote(): void {
    this.#stopTimer();
    if (!this.#due()) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#beat();
    }, this.#ms);
  }

  close(): void {
    this.#stopTimer();
    this.#unsubscribe();
  }

  /** Whether silence must be broken: a run goes on or something is waited for. */
  #due(): boolean {
    return this.#running || this.waits.current().length > 0;
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** One JSON event per line on stdout, and a `progress` event per active task when quiet. */
export class JsonReporter implements Reporter {
  readonly #write: (text: string) => void;
  readonly #heart: Heartbeat;

  constructor(
    {
      write = stdout,
      clock = systemClock,
      heartbeatMs = HEARTBEAT_MS,
      waits = processWaits,
    }: StreamReporterOptions = {},
  ) {
    this.#write = write;
    this.#heart = new Heartbeat(clock, heartbeatMs, waits, () => this.#beat());
  }

  emit(event: RunEvent): void {
    this.#heart.observe(event);
    this.#line(event);
  }

  progress(task: string, counts: TaskCounts): void {
    this.#heart.update(task, counts);
  }

  steps(task: string, item: string, done: number, budget: number): void {
    this.#heart.steps(task, item, done, budget);
  }

  close(): void {
    this.#heart.close();
  }

  #beat(): void {
    const lines = this.#heart.active().map((t): ProgressEvent => ({
      event: "progress",
      task: t.task,
      counts: t.counts,
      seconds: t.seconds,
      ...(t.steps ? { steps: t.steps } : {}),
    }));
    const waiting = this.#heart.waits.current();
    // Between tasks (a finished one's records are flushed) there is still a run to report.
    if (lines.length === 0 || waiting.length) {
      lines.push({ event: "progress", task: null, ...(waiting.length ? { waiting } : {}) });
    }
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
 * progress line per active task and per wait whenever nothing else was written for
 * {@link HEARTBEAT_MS}.
 */
export class PlainReporter implements Reporter {
  readonly #write: (text: string) => void;
  readonly #clock: ProgressClock;
  readonly #heart: Heartbeat;

  constructor(
    {
      write = stderr,
      clock = systemClock,
      heartbeatMs = HEARTBEAT_MS,
      waits = processWaits,
    }: StreamReporterOptions = {},
  ) {
    this.#write = write;
    this.#clock = clock;
    this.#heart = new Heartbeat(clock, heartbeatMs, waits, () => this.#beat());
  }

  emit(event: RunEvent): void {
    this.#heart.observe(event);
    const line = describeEvent(event, this.#clock.now(), this.#heart.plan);
    if (line) this.#print(line);
  }

  progress(task: string, counts: TaskCounts): void {
    this.#heart.update(task, counts);
  }

  steps(task: string, item: string, done: number, budget: number): void {
    this.#heart.steps(task, item, done, budget);
  }

  close(): void {
    this.#heart.close();
  }

  #beat(): void {
    const at = stamp(this.#clock.now());
    const lines = this.#heart.active().map((t) =>
      `${at} ${t.task}: ${activeText(t)} · running for ${formatSeconds(t.seconds)}`
    );
    for (const wait of this.#heart.waits.current()) lines.push(`${at} waiting: ${wait}`);
    this.#print(lines.length ? lines.join("\n") : `${at} still running`);
  }

  #print(line: string): void {
    this.#write(line + "\n");
    this.#heart.wrote();
  }
}

/** What a heartbeat says of an active task: its steps, else its items and their rate. */
function activeText({ counts: c, seconds, steps }: Active): string {
  if (steps) return stepsText(c, steps);
  const rate = seconds > 0 ? c.ran / seconds : 0;
  const left = c.total - c.ran - c.cached - c.failed;
  const eta = c.final && rate > 0 && left > 0 ? `, eta ${formatSeconds(left / rate)}` : "";
  const done = c.ran + c.cached + c.failed;
  return done === 0
    ? "no item finished yet"
    : `${countsText(c)} · ${rate.toFixed(rate < 1 ? 2 : 1)}/s${eta}`;
}

/** The reporter for the current output: JSON, terminal, or plain. */
export function chooseReporter(json: boolean): Reporter {
  if (json) return new JsonReporter();
  return Deno.stderr.isTerminal() ? new TtyReporter() : new PlainReporter();
}

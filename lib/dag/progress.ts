/**
 * Progress displays: live lines on a terminal, plain log lines otherwise, JSON lines for scripts.
 *
 * @module
 */
import type { Reporter, RunEvent, TaskCounts } from "./events.ts";

const encoder = new TextEncoder();

function write(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

/** One JSON event per line on stdout. */
export class JsonReporter implements Reporter {
  emit(event: RunEvent): void {
    Deno.stdout.writeSync(encoder.encode(JSON.stringify(event) + "\n"));
  }
  progress(): void {}
  close(): void {}
}

/** Plain log lines (not a terminal): failures, retries, logs, and one line per finished task. */
export class PlainReporter implements Reporter {
  #last = new Map<string, number>();
  emit(event: RunEvent): void {
    const line = describe(event);
    if (line) write(line + "\n");
  }
  progress(task: string, counts: TaskCounts): void {
    const now = Date.now();
    const last = this.#last.get(task);
    if (last === undefined) this.#last.set(task, now);
    if (last === undefined || now - last < 10_000) return;
    this.#last.set(task, now);
    write(`${stamp()} ${task}: ${countsText(counts)}\n`);
  }
  close(): void {}
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
    const line = event.event === "item" && event.status === "ran" ? null : describe(event);
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
    write(line + "\n");
    this.#draw();
  }

  #clear(): void {
    if (this.#drawn > 0) write(`\x1b[${this.#drawn}F\x1b[J`);
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
    if (lines.length) write(lines.join("\n") + "\n");
    this.#drawn = lines.length;
  }
}

/** The reporter for the current output: JSON, terminal, or plain. */
export function chooseReporter(json: boolean): Reporter {
  if (json) return new JsonReporter();
  return Deno.stderr.isTerminal() ? new TtyReporter() : new PlainReporter();
}

function describe(event: RunEvent): string | null {
  switch (event.event) {
    case "run-start":
      return `${stamp()} ${event.dryRun ? "plan" : "run"} ${event.run}: ${event.tasks.join(" → ")}`;
    case "task-start":
    case "plan":
      return null;
    case "item":
      return event.status === "failed"
        ? `${stamp()} ${event.task} ${event.item} failed: ${event.reason}`
        : null;
    case "retry":
      return `${stamp()} ${event.task} ${event.item} retry ${event.attempt} in ${
        formatSeconds(event.delayMs / 1000)
      }: ${event.reason}`;
    case "log":
      return `${stamp()} ${event.task}: ${event.message}`;
    case "task-end": {
      const why = event.reason ? ` — ${event.reason}` : "";
      let text = `${stamp()} ${event.task} ${event.status}: ${countsText(event.counts)}${why}`;
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
      return `${stamp()} run ${event.run} ${event.status} in ${formatSeconds(event.seconds)}`;
  }
}

function countsText(c: TaskCounts): string {
  const parts = [`${c.ran} ran`, `${c.cached} cached`];
  if (c.failed) parts.push(`${c.failed} failed`);
  return `${c.ran + c.cached + c.failed}/${c.total}${c.final ? "" : "+"} (${parts.join(", ")})`;
}

function stamp(): string {
  return new Date().toISOString().slice(11, 19);
}

/** "1h02m", "3m05s", "4.2s". */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

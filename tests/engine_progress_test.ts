import { assert, assertAlmostEquals, assertEquals, assertMatch } from "./fixtures/assert.ts";
import type { Reporter, RunEvent, TaskCounts } from "../lib/dag/events.ts";
import { HEARTBEAT_MS, JsonReporter, PlainReporter } from "../lib/dag/progress.ts";
import { FakeClock } from "./fixtures/fake_clock.ts";
import { seededRandom } from "../lib/base/random.ts";
import { join } from "node:path";
import { WaitBoard } from "../lib/base/waits.ts";
import { openRecords } from "../lib/store/records.ts";
import { VaeProject } from "./fixtures/vae_project.ts";
import { writeDemoVae } from "./fixtures/vae.ts";
import { optimizeLatents, type OptimizerSettings } from "../lib/optim/latent_optimizer.ts";
import { numericEvaluator, numericJobs, numericSettings } from "./fixtures/numeric_evaluator.ts";

/** The clock of these tests: 02:00:00 UTC on the day the run is played. */
const START = Date.UTC(2026, 10, 21, 2, 0, 0);

/** When each event of a played run was emitted (clock time). */
interface Played {
  at: number;
  event: RunEvent;
}

/**
 * Plays a run like the one that was silent for 1 min 40 s: optimize finishes batches of eight
 * images minutes apart, and a finished image prints nothing without a terminal. Returns every
 * event with the time it was emitted.
 */
function playRun(reporter: Reporter, clock: FakeClock, seed: number): Played[] {
  const rnd = seededRandom(seed);
  console.log(`seed ${seed}`);
  const played: Played[] = [];
  const emit = (event: RunEvent) => {
    played.push({ at: clock.now(), event });
    reporter.emit(event);
  };
  emit({
    event: "run-start",
    run: 1,
    targets: ["optimize"],
    tasks: ["optimize"],
    dryRun: false,
  });
  emit({ event: "task-start", task: "optimize" });
  const counts: TaskCounts = { total: 64, ran: 0, cached: 0, failed: 0, final: true };
  for (let batch = 0; batch < 8; batch++) {
    clock.advance(60_000 + rnd() * 60_000);
    for (let i = 0; i < 8; i++) {
      counts.ran++;
      emit({
        event: "item",
        task: "optimize",
        item: String(counts.ran),
        status: "ran",
        ms: 90_000,
      });
      reporter.progress("optimize", counts);
      clock.advance(rnd() * 300);
    }
  }
  emit({ event: "task-end", task: "optimize", status: "ok", counts: { ...counts } });
  emit({ event: "run-end", run: 1, status: "ok", exitCode: 0, seconds: 900 });
  return played;
}

/**
 * How many heartbeats a reporter writes: one each time {@link HEARTBEAT_MS} pass after the last
 * line it wrote, so `floor(gap / HEARTBEAT_MS)` in each gap between two written events (up to
 * the run's end, after which none).
 */
function expectedBeats(written: Played[]): number {
  let beats = 0;
  for (let i = 1; i < written.length; i++) {
    beats += Math.floor((written[i].at - written[i - 1].at) / HEARTBEAT_MS);
  }
  return beats;
}

function capture(clock: FakeClock) {
  const lines: { at: number; text: string }[] = [];
  const write = (text: string) => {
    for (const line of text.split("\n").filter(Boolean)) {
      lines.push({ at: clock.now(), text: line });
    }
  };
  return { lines, write };
}

function longestGap(lines: { at: number }[]): number {
  let gap = 0;
  for (let i = 1; i < lines.length; i++) gap = Math.max(gap, lines[i].at - lines[i - 1].at);
  return gap;
}

Deno.test("without a terminal, a progress line comes at least every 10 s during a run", () => {
  const clock = new FakeClock(START);
  const { lines, write } = capture(clock);
  const reporter = new PlainReporter({ write, clock });
  const played = playRun(reporter, clock, 17);
  const runEnd = lines.findIndex((l) => / run 1 ok in /.test(l.text));
  assert(runEnd > 0, "no run-end line");
  assert(
    longestGap(lines.slice(0, runEnd + 1)) <= HEARTBEAT_MS,
    `silent for ${longestGap(lines) / 1000} s`,
  );
  const beats = lines.filter((l) => / · running for /.test(l.text));
  // Without a terminal a finished item prints nothing: only the other events reset the wait.
  const printed = played.filter((p) => p.event.event !== "item");
  assertEquals(beats.length, expectedBeats(printed), "progress lines in a 10-minute run");
  assert(beats.length > 8 * 6, `${beats.length} progress lines: the run was not played`);
  assertMatch(
    beats[0].text,
    /^02:00:10 optimize: no item finished yet · running for 10\.0s$/,
  );
  const later = beats.find((l) => l.text.includes("optimize: 8/64"))!;
  assertMatch(
    later.text,
    /optimize: 8\/64 \(8 ran, 0 cached\) · 0\.\d\d\/s, eta \d+m\d\ds · running for/,
  );
  // After the run, nothing more: the timer is gone.
  const count = lines.length;
  clock.advance(120_000);
  assertEquals(lines.length, count);
  assertEquals(clock.pending, 0);
  reporter.close();
});

Deno.test("with --json, a progress event comes at least every 10 s during a run", () => {
  const clock = new FakeClock(START);
  const { lines, write } = capture(clock);
  const reporter = new JsonReporter({ write, clock });
  const played = playRun(reporter, clock, 4242);
  const events = lines.map((l) => ({ at: l.at, e: JSON.parse(l.text) }));
  const end = events.findIndex((x) => x.e.event === "run-end");
  assert(longestGap(events.slice(0, end + 1)) <= HEARTBEAT_MS);
  const progress = events.filter((x) => x.e.event === "progress");
  // Every event is a JSON line, items included: each resets the wait.
  assertEquals(progress.length, expectedBeats(played), "progress events");
  assert(progress.length > 8 * 5, `${progress.length} progress events: the run was not played`);
  assertEquals(progress[0].e, {
    event: "progress",
    task: "optimize",
    counts: { total: 0, ran: 0, cached: 0, failed: 0, final: false },
    seconds: 10,
  });
  assert(progress.some((x) => x.e.counts?.ran === 16 && x.e.counts.total === 64));
  clock.advance(60_000);
  assertEquals(events.length, lines.length);
  reporter.close();
});

Deno.test("a dry run starts no heartbeat; between two tasks the run is still reported", () => {
  const clock = new FakeClock(START);
  const { lines, write } = capture(clock);
  const plan = new PlainReporter({ write, clock });
  plan.emit({ event: "run-start", run: 2, targets: ["a"], tasks: ["a"], dryRun: true });
  clock.advance(60_000);
  assertEquals(lines.length, 1);
  assertEquals(clock.pending, 0);

  const run = new PlainReporter({ write, clock });
  run.emit({ event: "run-start", run: 3, targets: ["b"], tasks: ["a", "b"], dryRun: false });
  clock.advance(HEARTBEAT_MS);
  assertEquals(lines.at(-1)!.text, "02:01:10 still running");
  run.close();
  assertEquals(clock.pending, 0);
});

/** Seconds in a {@link formatSeconds} text: `7.4s`, `3m05s`, `1h02m`. */
function seconds(text: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?$/.exec(text);
  assert(m, `not a duration: ${text}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

/**
 * Optimizes `count` images with the optimize loop (the numeric stand-in decoder, each pass of
 * the batch taking `passMs` of the fake clock) reporting to `reporter` as the optimize task
 * does: where each image starts, its steps after every pass, each finished image. Returns the
 * clock time the task ended.
 */
async function playOptimize(
  reporter: Reporter,
  clock: FakeClock,
  { count, passMs, settings }: { count: number; passMs: number; settings: OptimizerSettings },
): Promise<number> {
  const counts: TaskCounts = { total: count, ran: 0, cached: 0, failed: 0, final: true };
  reporter.emit({
    event: "run-start",
    run: 5,
    targets: ["optimize"],
    tasks: ["optimize"],
    dryRun: false,
  });
  reporter.emit({ event: "task-start", task: "optimize" });
  reporter.progress("optimize", counts);
  const jobs = numericJobs(count, settings);
  const pending = [...jobs];
  const evaluator = numericEvaluator(settings, jobs, { onEvaluate: () => clock.advance(passMs) });
  await optimizeLatents({
    settings,
    evaluator,
    signal: new AbortController().signal,
    next(max) {
      const handed = pending.splice(0, max);
      for (const job of handed) reporter.steps!("optimize", job.id, 0, settings.maxSteps);
      return Promise.resolve(handed);
    },
    save: () => Promise.resolve(),
    done(id) {
      counts.ran++;
      reporter.emit({ event: "item", task: "optimize", item: id, status: "ran", ms: 0 });
      reporter.progress("optimize", counts);
      return Promise.resolve();
    },
    progress: ({ id, steps }) => reporter.steps!("optimize", id, steps, settings.maxSteps),
  });
  const end = clock.now();
  reporter.emit({ event: "task-end", task: "optimize", status: "ok", counts: { ...counts } });
  reporter.emit({ event: "run-end", run: 5, status: "ok", exitCode: 0, seconds: 1 });
  return end;
}

Deno.test("optimize's progress counts steps, and its ETA from the step rate is within ±30% once 10% is done", async () => {
  // Images stop on their own at different steps, as real ones do: most early (about 20 of
  // 60 steps), or most at max_steps and a few before it.
  const cases = [
    numericSettings({ batch: 4, maxSteps: 60, lr: 0.05, patience: 6, tolerance: 1e-4 }),
    numericSettings({ batch: 4, maxSteps: 60, lr: 0.02, patience: 10, tolerance: 1e-5 }),
  ];
  for (const settings of cases) {
    const clock = new FakeClock(START);
    const { lines, write } = capture(clock);
    const reporter = new PlainReporter({ write, clock, waits: new WaitBoard() });
    const end = await playOptimize(reporter, clock, { count: 16, passMs: 700, settings });
    reporter.close();
    const text = lines.map((l) => l.text).join("\n");
    const beats = lines.flatMap((l) => {
      const m =
        /optimize: (\d+)\/16 images · step (\d+)\/960 · ([\d.]+) steps\/s · eta (\S+) · running for/
          .exec(l.text);
      return m ? [{ at: l.at, images: +m[1], step: +m[2], rate: +m[3], eta: seconds(m[4]) }] : [];
    });
    assertEquals(beats.length, lines.filter((l) => / · running for /.test(l.text)).length, text);
    assert(beats.length >= 5, `${beats.length} progress lines:\n${text}`);
    // Four images a pass, a pass every 0.7 s (the pass that only decodes an image's best latent
    // takes no step).
    for (const b of beats) assertAlmostEquals(b.rate, 4 / 0.7, 0.6);
    const judged = beats.filter((b) => b.step >= 96);
    assert(judged.length >= 3, text);
    for (const b of judged) {
      const left = (end - b.at) / 1000;
      assert(
        Math.abs(b.eta - left) <= 0.3 * left,
        `at step ${b.step}/960 the eta is ${b.eta} s, ${left} s were left:\n${text}`,
      );
    }
    assert(beats.some((b) => b.images > 0 && b.images < 16), text);
  }
});

Deno.test("the optimize task reports each image's steps: where it starts, then after every step", async () => {
  const p = await VaeProject.create(3, 32);
  try {
    const vae = await writeDemoVae(join(p.dir, "vae"));
    const run = await p.run({
      preprocess: { size: 32 },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: vae.decoder },
        scaling_factor: 1,
        providers: ["cpu"],
        threads: 1,
      },
      optimize: { max_steps: 5, batch_size: 2 },
    }, ["optimize"]);
    assertEquals(run.exitCode, 0);
    assertEquals(new Set(run.steps.map((s) => s.task)), new Set(["optimize"]));
    const records = await openRecords(p.cache);
    const optimized = await records.actions("optimize");
    records.close();
    assertEquals(optimized.size, 3);
    // Before its first image finished, the displays knew optimize's three images and that no
    // more would come (so they can show 0/3 and an ETA, not 0/0+).
    const firstDone = run.events.findIndex((e) => e.event === "item" && e.task === "optimize");
    assert(firstDone > 0);
    assert(
      run.progress.some((p) =>
        p.task === "optimize" && p.after <= firstDone && p.counts.total === 3 && p.counts.final
      ),
      JSON.stringify(run.progress.filter((p) => p.task === "optimize")),
    );
    for (const [id, record] of optimized) {
      const mine = run.steps.filter((s) => s.item === id);
      const { steps } = record.meta as { steps: number };
      // A fresh image starts at 0, then reports after every pass (the pass that scores the
      // last step takes none), step by step up to the steps it took.
      const done = mine.map((s) => s.done);
      assertEquals([...new Set(done)], Array.from({ length: steps + 1 }, (_, i) => i), id);
      assert(done.every((d, i) => i === 0 || d - done[i - 1] <= 1 && d >= done[i - 1]), id);
      assert(mine.every((s) => s.budget === 5), id);
    }
  } finally {
    await p.cleanup();
  }
});

Deno.test("with --json, a progress event of a task whose items report steps carries them", async () => {
  const clock = new FakeClock(START);
  const { lines, write } = capture(clock);
  const reporter = new JsonReporter({ write, clock, waits: new WaitBoard() });
  const settings = numericSettings({
    batch: 4,
    maxSteps: 60,
    lr: 0.02,
    patience: 10,
    tolerance: 1e-5,
  });
  await playOptimize(reporter, clock, { count: 8, passMs: 700, settings });
  reporter.close();
  const progress = lines.map((l) => JSON.parse(l.text)).filter((e) => e.event === "progress");
  assert(progress.length >= 5, `${progress.length} progress events`);
  for (const p of progress) {
    assertEquals(p.task, "optimize");
    assertEquals(p.steps.total, 480);
    assert(p.steps.done > 0 && p.steps.done <= 480, JSON.stringify(p));
    assertAlmostEquals(p.steps.rate, 4 / 0.7, 0.6);
    assert(p.steps.eta > 0, JSON.stringify(p));
  }
  const done = progress.map((p) => p.steps.done);
  assert(done.every((d, i) => i === 0 || d >= done[i - 1]), `${done}`);
});

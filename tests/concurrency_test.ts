/**
 * Commands that meet on one cache, as real processes: two runs, a run beside `gc`, a run beside
 * `verify`. One of them holds the lease; the other exits 2 naming the holder (or, with
 * `--wait`, waits). Afterwards `verify` finds nothing corrupt and the output equals a clean
 * run's. The holder keeps the lease until the test makes its hold file, so no timing decides
 * who meets whom.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { parse, type Ran } from "./fixtures/project.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";

const COUNT = 150;

/**
 * A run in the background that holds the lease until released: its first task waits for the
 * hold file (the toy's `TOY_HOLD_UNTIL`), so what the others meet is decided by that file, not
 * by how long anything takes.
 */
interface Background {
  pid: number;
  /** Lets the held run go on. */
  release(): Promise<void>;
  done: Promise<Ran>;
}

/** Reads a stream to its end, calling `seen` with the text so far after every chunk. */
function collect(stream: ReadableStream<Uint8Array>, seen: (text: string) => void) {
  const chunks: Uint8Array[] = [];
  let text = "";
  const done = (async () => {
    for await (const chunk of stream) {
      chunks.push(chunk);
      text += new TextDecoder().decode(chunk, { stream: true });
      seen(text);
    }
    const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.length;
    }
    return bytes;
  })();
  return done;
}

/** Starts `args` in the background, resolving once `marker` shows in its stdout or stderr. */
async function startUntil(
  p: ToyProject,
  args: string[],
  env: Record<string, string>,
  marker: { stdout?: string; stderr?: string },
): Promise<{ pid: number; done: Promise<Ran> }> {
  const child = p.command(args, env).spawn();
  let reached!: () => void;
  const shown = new Promise<void>((resolve) => reached = resolve);
  const watch = (want?: string) => (text: string) => {
    if (want !== undefined && text.includes(want)) reached();
  };
  const stdout = collect(child.stdout, watch(marker.stdout));
  const stderr = collect(child.stderr, watch(marker.stderr));
  const done = (async () => {
    const [status, out, err] = await Promise.all([child.status, stdout, stderr]);
    return parse(status.code, out, err);
  })();
  const ended = await Promise.race([shown.then(() => null), done]);
  if (ended !== null) {
    throw new Error(
      `${args.join(" ")} ended (exit ${ended.code}) before it said ${JSON.stringify(marker)}:\n` +
        ended.stderr,
    );
  }
  return { pid: child.pid, done };
}

/** A run holding the lease (its run-start event is out) until the hold file is made. */
async function startHolding(p: ToyProject, args: string[] = []): Promise<Background> {
  const hold = join(p.dir, `release-${crypto.randomUUID()}`);
  const started = await startUntil(p, ["run", "--json", ...args], { TOY_HOLD_UNTIL: hold }, {
    stdout: '"event":"run-start"',
  });
  return { ...started, release: () => Deno.writeTextFile(hold, "") };
}

function assertNoCrash(r: Ran, what: string): void {
  const text = r.stderr + r.stdout;
  assert(!/^\s{4}at /m.test(text), `${what}: a stack trace was printed:\n${r.stderr}`);
  assert(!text.includes("Uncaught"), `${what}: an uncaught error:\n${r.stderr}`);
}

/** The refusal a command gets while `holder` runs: exit 2, the holder named, the way out. */
function assertRefused(r: Ran, holder: Background, command: string): void {
  assertEquals(r.code, 2, `${command} beside a run: ${r.stderr}`);
  assertNoCrash(r, command);
  assertMatch(
    r.stderr,
    new RegExp(
      `the cache .* is in use by "run" \\(pid ${holder.pid} on [^)]+\\) since \\d{4}-\\d\\d-\\d\\dT` +
        `.*; wait for it to finish, or pass --wait`,
    ),
  );
}

let clean: string | undefined;
async function cleanOutput(): Promise<string> {
  if (clean !== undefined) return clean;
  return clean = await ToyProject.cleanOutput(COUNT);
}

/** Nothing corrupt, nothing left to do, and the same output as a clean run's. */
async function assertIntact(p: ToyProject): Promise<void> {
  const verify = await p.run(["verify"]);
  assertEquals(verify.code, 0, verify.stdout + verify.stderr);
  assertMatch(verify.stdout, /no corrupt objects/);
  const again = await p.run(["run", "--json"]);
  assertEquals(again.code, 0, again.stderr);
  assertEquals([...ToyProject.ran(again).values()].filter((n) => n > 0), [], "work was redone");
  assertEquals(await Deno.readTextFile(p.out), await cleanOutput());
}

Deno.test("a second run exits 2 naming the first; with --wait it waits and redoes nothing", async () => {
  const p = await ToyProject.create({ count: COUNT });
  try {
    const first = await startHolding(p);
    const refused = await p.run(["run"]);
    assertRefused(refused, first, "run");
    // Said before the first is let go, so this run waited for it.
    const waiting = await startUntil(p, ["run", "--json", "--wait"], {}, {
      stderr: `waiting for pid ${first.pid} (run, since `,
    });
    await first.release();
    const r = await first.done;
    assertEquals(r.code, 0, r.stderr);
    assertNoCrash(r, "the first run");

    const waited = await waiting.done;
    assertEquals(waited.code, 0, waited.stderr);
    // It started only once the first had finished, so everything was cached by then.
    assertEquals([...ToyProject.ran(waited).values()].filter((n) => n > 0), []);
    await assertIntact(p);
  } finally {
    await p.cleanup();
  }
});

Deno.test("two runs started at the same moment: one runs, the other exits 2", async () => {
  const p = await ToyProject.create({ count: COUNT });
  try {
    const hold = join(p.dir, "release");
    const both = [0, 1].map((i) =>
      p.command(["run"], { TOY_HOLD_UNTIL: hold }).output().then((o) => ({ i, o }))
    );
    // The winner waits for the hold file, so the first to end is the one refused.
    const first = await Promise.race(both);
    const loser = parse(first.o.code, first.o.stdout, first.o.stderr);
    await Deno.writeTextFile(hold, "");
    const second = (await both[1 - first.i]).o;
    const winner = parse(second.code, second.stdout, second.stderr);
    assertEquals([winner.code, loser.code], [0, 2], loser.stderr + winner.stderr);
    assertNoCrash(loser, "the refused run");
    // The loser either finds the winner's lease or, when both open a fresh cache in the same
    // instant, SQLite's lock; both say what happened and that nothing changed.
    assertMatch(
      loser.stderr,
      /is in use by "run" \(pid \d+ on .*--wait|record database is locked by another .*run again/,
    );
    console.log(`refused with: ${loser.stderr.trim().split("\n").at(-1)}`);
    await assertIntact(p);
  } finally {
    await p.cleanup();
  }
});

Deno.test("gc and verify beside a run exit 2 and touch nothing; afterwards both succeed", async () => {
  const p = await ToyProject.create({ count: COUNT });
  try {
    const run = await startHolding(p);
    const [gc, verify] = await Promise.all([p.run(["gc"]), p.run(["verify"])]);
    assertRefused(gc, run, "gc");
    assertRefused(verify, run, "verify");
    await run.release();
    const r = await run.done;
    assertEquals(r.code, 0, r.stderr);

    const gcAfter = await p.run(["gc"]);
    assertEquals(gcAfter.code, 0, gcAfter.stderr);
    assertMatch(gcAfter.stdout, /^freed .* in \d+ objects; kept \d+ /);
    await assertIntact(p);
  } finally {
    await p.cleanup();
  }
});

/**
 * Commands that meet on one cache, as real processes: two runs, a run beside `gc`, a run beside
 * `verify`. One of them holds the lease; the other exits 2 naming the holder (or, with
 * `--wait`, waits). Afterwards `verify` finds nothing corrupt and the output equals a clean
 * run's.
 */
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { parse, type Ran } from "./fixtures/project.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";

const COUNT = 150;
/** Slows each `square` item so a run holds the lease for a few seconds. */
const SLOW = { TOY_SLEEP_MS: "20" };
/** One item at a time: with {@link SLOW}, about 3 s of holding the lease. */
const ONE_AT_A_TIME = ["--concurrency", "1"];

/** A run in the background, resolved once it holds the lease (its run-start event is out). */
interface Background {
  pid: number;
  done: Promise<Ran>;
}

async function startHolding(p: ToyProject, args: string[] = []): Promise<Background> {
  const child = p.command(["run", "--json", ...ONE_AT_A_TIME, ...args], SLOW).spawn();
  const stderr = new Response(child.stderr).bytes();
  const reader = child.stdout.getReader();
  const chunks: Uint8Array[] = [];
  let seen = "";
  while (!seen.includes('"event":"run-start"')) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    seen += new TextDecoder().decode(value);
  }
  const done = (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const status = await child.status;
    const stdout = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      stdout.set(c, at);
      at += c.length;
    }
    return parse(status.code, stdout, await stderr);
  })();
  assert(seen.includes('"event":"run-start"'), "the background run never started");
  return { pid: child.pid, done };
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
    const [refused, waiting] = await Promise.all([
      p.run(["run"]),
      p.run(["run", "--json", "--wait"], SLOW),
    ]);
    assertRefused(refused, first, "run");

    assertEquals(waiting.code, 0, waiting.stderr);
    assertMatch(waiting.stderr, new RegExp(`waiting for pid ${first.pid} \\(run, since `));
    // It started only once the first had finished, so everything was cached by then.
    assertEquals([...ToyProject.ran(waiting).values()].filter((n) => n > 0), []);

    const r = await first.done;
    assertEquals(r.code, 0, r.stderr);
    assertNoCrash(r, "the first run");
    await assertIntact(p);
  } finally {
    await p.cleanup();
  }
});

Deno.test("two runs started at the same moment: one runs, the other exits 2", async () => {
  const p = await ToyProject.create({ count: COUNT });
  try {
    const both = await Promise.all(
      [0, 1].map(() => p.command(["run", ...ONE_AT_A_TIME], SLOW).output()),
    );
    const ran = both.map((o) => parse(o.code, o.stdout, o.stderr));
    assertEquals(ran.map((r) => r.code).sort(), [0, 2], ran.map((r) => r.stderr).join("\n"));
    const loser = ran.find((r) => r.code === 2)!;
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

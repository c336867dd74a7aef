/**
 * Runs every row of the reliability corpus (cases.ts) through the real command line, each on a
 * copy of one clean project: the exit code, the words of the message, no stack trace, and the
 * row's "nothing lost" check. Prints one line per row — the corpus table of the README.
 */
import { assert, assertEquals, assertStringIncludes } from "../fixtures/assert.ts";
import { tmpfsRequirement } from "../fixtures/tmpfs.ts";
import { partIf } from "../fixtures/skip.ts";
import type { Ran } from "../fixtures/project.ts";
import { CASES } from "./cases.ts";
import { setStage } from "./scene.ts";

const mounts = await tmpfsRequirement();
const TEST = `reliability corpus (${CASES.length} rows)`;

/** Neither a stack trace nor an uncaught error in anything the command printed. */
function assertNoCrash(r: Ran, row: string): void {
  const text = r.stderr + r.stdout;
  assert(!/^\s{4}at /m.test(text), `${row}: a stack trace was printed:\n${text}`);
  assert(!text.includes("Uncaught"), `${row}: an uncaught error:\n${text}`);
}

/** Every message of a run: stderr, plain stdout and the reasons and logs of `--json` events. */
function messages(r: Ran): string {
  const fromEvents = r.events.map((e) =>
    [e.task, e.item, e.reason, e.message].filter((v) => v !== undefined).join(" ")
  );
  return [r.stderr, r.stdout, ...fromEvents].join("\n");
}

/** The line of the output that carries the row's first expected words (the user's message). */
function firstLine(r: Ran, words: string[]): string {
  const lines = messages(r).split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("{"));
  const line = lines.find((l) => words.length > 0 && l.includes(words[0])) ??
    lines.find((l) => l.startsWith("error:")) ?? lines[lines.length - 1] ?? "";
  return line.length > 160 ? `${line.slice(0, 157)}…` : line;
}

Deno.test(TEST, async (t) => {
  const stage = await setStage();
  try {
    for (const row of CASES) {
      await t.step({
        name: row.name,
        // A row that needs a mount passes saying what it could not check (a SKIP line).
        ignore: row.mounts === true && !partIf(mounts, TEST, row.name),
        fn: async () => {
          const scene = await stage.copy();
          try {
            const r = await row.act(scene, stage);
            const text = messages(r);
            assertEquals(r.code, row.code, `${row.name}: exit code; output:\n${text}`);
            assertNoCrash(r, row.name);
            for (const word of row.words) {
              assertStringIncludes(
                text,
                word,
                `${row.name}: expected ${JSON.stringify(word)} in:\n${text}`,
              );
            }
            const kept = await row.kept(scene, stage, r);
            console.log(`| ${row.name} | ${r.code} | ${firstLine(r, row.words)} | ${kept} |`);
          } finally {
            await row.cleanup?.(scene);
            await scene.cleanup();
          }
        },
      });
    }
  } finally {
    await stage.close();
  }
});

/**
 * Chaos: `kill -9` in every stage of the demo pipeline, then a run to the end; the output must
 * be byte-identical to a clean run's, the store intact, no finished download fetched again, and
 * every partial download a kill left part-way resumed from its last byte.
 *
 * In the suite the kills follow the event plan: chosen moments the run reveals (a partial that
 * grew, a stage's first item, a fresh checkpoint, package starting, the publish folder), the
 * same on every machine. `deno task test:chaos` (`LATENTFORGE_CHAOS_KILLS=30`) sends that many
 * kills at seeded random moments instead, over more images and steps; the seed is printed first
 * and `LATENTFORGE_CHAOS_SEED` replays its delays (the moments they follow still depend on the
 * machine).
 */
import { assert, assertEquals } from "./fixtures/assert.ts";
import {
  CHAOS_STAGES,
  EVENT_PLAN,
  markerWithoutReport,
  reportWithoutTimings,
  runChaos,
} from "./chaos/chaos_run.ts";

const RANDOM_KILLS = Deno.env.get("LATENTFORGE_CHAOS_KILLS");
const SEED = Deno.env.get("LATENTFORGE_CHAOS_SEED");
const KILLS = RANDOM_KILLS ? Number(RANDOM_KILLS) : EVENT_PLAN.length;

const enc = (s: string) => new TextEncoder().encode(s);

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Where two files first differ: the line for text, the byte offset otherwise. */
function firstDifference(path: string, got: Uint8Array, want: Uint8Array): string {
  if (/\.(json|csv|txt|html)$/.test(path)) {
    const [g, w] = [got, want].map((b) => new TextDecoder().decode(b).split("\n"));
    const line = g.findIndex((l, i) => l !== w[i]);
    return `line ${line + 1}: found ${JSON.stringify(g[line])}, expected ${
      JSON.stringify(w[line])
    }`;
  }
  const at = got.findIndex((b, i) => b !== want[i]);
  return `${got.length} vs ${want.length} bytes, first difference at byte ${at}`;
}

Deno.test(`kill -9 ${KILLS} times across every stage${RANDOM_KILLS ? " at random moments" : ""}: the same bytes, an intact store, no download twice`, async () => {
  const r = await runChaos({
    plan: RANDOM_KILLS ? { random: KILLS } : EVENT_PLAN,
    images: RANDOM_KILLS ? 32 : 16,
    maxSteps: RANDOM_KILLS ? 60 : 40,
    seed: SEED ? Number(SEED) : undefined,
    log: (line) => console.log(`  ${line}`),
  });
  console.log(
    `  ${r.kills.length} kills, landed ${JSON.stringify(r.landed)}; ` +
      `clean ${r.cleanSeconds.toFixed(1)} s, under kills ${r.chaosSeconds.toFixed(1)} s; ` +
      `${r.imageRequests} image requests for ${r.images} images, ${r.rangeRequests} resumed; ` +
      `partials found by later attempts: ${r.partialsResumed} part-way (resumed), ` +
      `${r.partialsComplete} complete (taken over)`,
  );
  assertEquals(r.final.code, 0, `the final run failed: ${r.final.stderr}`);
  assertEquals(r.kills.length, KILLS, "every kill was sent while its run was working");
  if (RANDOM_KILLS) {
    for (const stage of CHAOS_STAGES) {
      assert(r.landed[stage] >= 1, `no kill landed in ${stage}: ${JSON.stringify(r.landed)}`);
    }
  } else {
    // Each kill followed an event of its stage, so it landed there.
    assertEquals(
      r.kills.map((k) => `${k.target} ${k.at} → ${k.landed}`),
      EVENT_PLAN.map((p) => `${p.stage} ${p.at} → ${p.stage}`),
    );
  }

  // Byte-identical output (HDF5 included), the report's timings and the marker's digest of it
  // aside.
  assertEquals([...r.chaos.keys()].sort(), [...r.clean.keys()].sort());
  const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);
  const differences: string[] = [];
  for (const [path, want] of r.clean) {
    const got = r.chaos.get(path)!;
    if (path === "report.html") {
      const [g, w] = [got, want].map((b) => reportWithoutTimings(text(b)));
      if (g !== w) differences.push(`${path}: ${firstDifference(path, enc(g), enc(w))}`);
    } else if (path === "run.json") {
      // The facts of the run that built the dataset: its date and timings.
    } else if (path === ".latentforge.json") {
      const [g, w] = [got, want].map((b) => JSON.stringify(markerWithoutReport(text(b))));
      if (g !== w) differences.push(`${path}: found ${g}, expected ${w}`);
    } else if (!same(got, want)) differences.push(`${path}: ${firstDifference(path, got, want)}`);
  }
  assertEquals(differences, [], "files differ from the clean run's");
  assert(r.clean.size >= 10, `the clean run published only ${[...r.clean.keys()]}`);
  assertEquals(r.leftovers, [], "an interrupted publish left files beside the output");

  assertEquals(r.verify.corrupt, [], "verify found corrupt objects");
  assertEquals(r.verify.code, 0);
  assert(r.verify.checked > r.images, `verify checked ${r.verify.checked} objects`);

  assertEquals(r.redownloads, [], "finished downloads were fetched again");
  assert(r.imageRequests >= r.images, `${r.imageRequests} requests for ${r.images} images`);
  // A partial left part-way is resumed from its length; one left complete (killed between the
  // last write and the move into the store) is taken over without a request; every other
  // request asks from byte 0.
  assertEquals(r.resumeErrors, [], "downloads not resumed from the partial's last byte");
  if (!RANDOM_KILLS) assert(r.partialsResumed >= 2, `${r.partialsResumed} partials resumed`);
  assertEquals(r.rangeRequests, r.partialsResumed, "Range requests: one per part-way partial");
});

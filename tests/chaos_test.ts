/**
 * Chaos: `kill -9` at random moments in every stage of the demo pipeline, then a run to the
 * end; the output must be byte-identical to a clean run's, the store intact, and no finished
 * download fetched again. The short form (part of the suite) sends 8 kills; the long form
 * (`LATENTFORGE_CHAOS_KILLS=30`, `deno task test:chaos`) sends as many as asked, over more
 * images and steps. `LATENTFORGE_CHAOS_SEED` replays the random delays of a reported seed
 * (the moments they follow still depend on the machine).
 */
import { assert, assertEquals } from "./fixtures/assert.ts";
import {
  CHAOS_STAGES,
  markerWithoutReport,
  reportWithoutTimings,
  runChaos,
} from "./chaos/chaos_run.ts";

const KILLS = Number(Deno.env.get("LATENTFORGE_CHAOS_KILLS") ?? 8);
const SEED = Deno.env.get("LATENTFORGE_CHAOS_SEED");
const LONG = KILLS > 8;

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

Deno.test(`kill -9 ${KILLS} times across every stage: the same bytes, an intact store, no download twice`, async () => {
  const r = await runChaos({
    kills: KILLS,
    images: LONG ? 32 : 16,
    maxSteps: LONG ? 60 : 40,
    seed: SEED ? Number(SEED) : undefined,
    log: (line) => console.log(`  ${line}`),
  });
  console.log(
    `  seed ${r.seed}: ${r.kills.length} kills, landed ${JSON.stringify(r.landed)}; ` +
      `clean ${r.cleanSeconds.toFixed(1)} s, under kills ${r.chaosSeconds.toFixed(1)} s; ` +
      `${r.imageRequests} image requests for ${r.images} images, ${r.rangeRequests} resumed (${r.partialsLeft} partials left by kills)`,
  );
  assertEquals(r.final.code, 0, `the final run failed: ${r.final.stderr}`);
  assert(r.kills.length >= KILLS, `only ${r.kills.length} of ${KILLS} kills were sent`);
  for (const stage of CHAOS_STAGES) {
    assert(r.landed[stage] >= 1, `no kill landed in ${stage}: ${JSON.stringify(r.landed)}`);
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
  assert(r.partialsLeft > 0, "no kill left a partial download to resume");
  assert(r.clean.size >= 10, `the clean run published only ${[...r.clean.keys()]}`);
  assertEquals(r.leftovers, [], "an interrupted publish left files beside the output");

  assertEquals(r.verify.corrupt, [], "verify found corrupt objects");
  assertEquals(r.verify.code, 0);
  assert(r.verify.checked > r.images, `verify checked ${r.verify.checked} objects`);

  assertEquals(r.redownloads, [], "finished downloads were fetched again");
  assert(r.imageRequests >= r.images, `${r.imageRequests} requests for ${r.images} images`);
  assert(
    r.rangeRequests >= r.partialsLeft,
    `${r.partialsLeft} partial downloads were left by kills, ${r.rangeRequests} Range requests`,
  );
});

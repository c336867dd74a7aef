/**
 * The files a dataset publishes about the run that built it: `report.html` with its run section
 * filled in, and `run.json` beside it. They are made at publish time from the run's recorded
 * facts, so they never enter the dataset's action key or output digest, and a later cache hit,
 * given the same facts, publishes the same bytes.
 *
 * @module
 */
import type { RunFacts } from "../dag/run_facts.ts";
import type { ObjectStore } from "../store/objects.ts";
import { type RunMadeWith, withRunSection } from "./run_section.ts";

/** The file that states the run's facts as JSON. */
export const RUN_JSON = "run.json";

/**
 * `objects` (relative path → digest) with `report.html` stating `facts` and `run.json` added,
 * both with what the dataset was made with (`made_with`), when given; the new files are put
 * into `store`. Without facts, the report says the run was not recorded and no `run.json` is
 * written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ObjectStore } from "../store/objects.ts";
 * import { renderRunSection } from "./run_section.ts";
 *
 * const cache = await Deno.makeTempDir();
 * const store = new ObjectStore(cache);
 * const report = await store.put(new TextEncoder().encode(renderRunSection(null)));
 * const files = await withRunFiles(store, { "report.html": report }, null);
 * // No facts: nothing to state, and no run.json.
 * assert.deepEqual(files, { "report.html": report });
 * await Deno.remove(cache, { recursive: true });
 * ```
 */
export async function withRunFiles(
  store: ObjectStore,
  objects: Record<string, string>,
  run: RunFacts | null,
  madeWith?: RunMadeWith,
): Promise<Record<string, string>> {
  const facts = run && madeWith ? { ...run, made_with: madeWith } : run;
  const out = { ...objects };
  const report = objects["report.html"];
  if (report !== undefined) {
    const html = new TextDecoder().decode(await store.get(report));
    const stated = withRunSection(html, facts);
    if (stated !== html) out["report.html"] = await store.put(new TextEncoder().encode(stated));
  }
  if (facts) {
    out[RUN_JSON] = await store.put(
      new TextEncoder().encode(JSON.stringify(facts, null, 1) + "\n"),
    );
  }
  return out;
}

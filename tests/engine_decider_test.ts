/**
 * The one decision, in process, one row per kind of key component: whether an action is
 * cached, and if not, what the plan says about it — a missing record, a config field, an input
 * digest, a source module, an npm version, the task version, the item's parameters, `--force`,
 * a failure before, an interruption, a record revived, an input not known yet, another
 * dataset's record, and a record from before code identity.
 */
import { assertEquals } from "./fixtures/assert.ts";
import { actionKey, paramsHash, taskHash } from "../lib/dag/action_key.ts";
import { ActionDecider, pendingDigest, type TaskFacts } from "../lib/dag/staleness.ts";
import { hashJson, type Json } from "../lib/store/canonical.ts";
import type {
  ActionRecord,
  CodeIdentity,
  LegacyTaskComponents,
  TaskComponents,
} from "../lib/store/records.ts";

const TASK = "optimize";
const CODE: CodeIdentity = {
  modules: { "lib/optim/adam.ts": "a1", "tasks/optimize.ts": "t1" },
  npm: { "onnxruntime-node": "1.30.0" },
};
const SLICE: Record<string, Json> = { "optimize.lr": 0.1, "dataset.kind": "ffhq" };
const INPUTS = { encode: "e".repeat(64), preprocess: "p".repeat(64) };

/** What the task was (or is) keyed on: a version, its code and config slice. */
interface Keyed {
  version?: string;
  code?: CodeIdentity;
  slice?: Record<string, Json>;
}

function components({ version = "1", code = CODE, slice = SLICE }: Keyed): TaskComponents {
  return { version, code: hashJson(code), config: hashJson(slice) };
}

/** A record written under `was`, with `inputs` and `params`. */
function record(was: Keyed, inputs = INPUTS, params?: Json): ActionRecord {
  const th = taskHash(TASK, components(was));
  const p = paramsHash(params);
  return {
    key: actionKey(th, inputs, p),
    taskHash: th,
    inputs,
    ...(p === undefined ? {} : { params: p }),
    objects: { latent: "l".repeat(64) },
    meta: null,
    digest: "d".repeat(64),
    run: 1,
    ms: 1,
  };
}

/** The decider for the task as it is now, with what the records hold. */
function decider(
  { records = [], superseded = [], legacy, failure, forced = false, checkpoint, scope }: {
    records?: [ActionRecord, Keyed][];
    superseded?: [ActionRecord, Keyed][];
    legacy?: { hash: string; components: LegacyTaskComponents };
    failure?: string;
    forced?: boolean;
    checkpoint?: { step: number; of: number };
    scope?: string[];
  },
): ActionDecider {
  const now = components({});
  const parts = new Map<string, TaskComponents | LegacyTaskComponents>();
  const codes = new Map<string, CodeIdentity>();
  const slices = new Map<string, Record<string, Json>>();
  for (const [rec, was] of [...records, ...superseded]) {
    parts.set(rec.taskHash, components(was));
    codes.set(hashJson(was.code ?? CODE), was.code ?? CODE);
    slices.set(hashJson(was.slice ?? SLICE), was.slice ?? SLICE);
  }
  if (legacy) parts.set(legacy.hash, legacy.components);
  const facts: TaskFacts = {
    task: TASK,
    components: now,
    code: CODE,
    taskHash: taskHash(TASK, now),
    slice: SLICE,
    records: new Map(records.map(([r]) => ["7", r])),
    superseded: new Map(superseded.length ? [["7", superseded.map(([r]) => r)]] : []),
    failures: new Map(
      failure
        ? [["7", { key: "k", reason: failure, kind: "Error", attempts: 1, run: 1, at: "" }]]
        : [],
    ),
    forced,
    scope,
    recordedComponents: (h) => Promise.resolve(parts.get(h) ?? null),
    recordedCode: (h) => Promise.resolve(codes.get(h) ?? null),
    recordedSlice: (h) => Promise.resolve(slices.get(h) ?? null),
    objectsPresent: () => Promise.resolve(true),
    checkpoint: () => Promise.resolve(checkpoint ?? null),
  };
  return new ActionDecider(facts);
}

const current = (): [ActionRecord, Keyed] => [record({}), {}];
const with_ = (keyed: Keyed): [ActionRecord, Keyed] => [record(keyed), keyed];

/** One row: the decider, the item's inputs and parameters, and what the decision must say. */
const ROWS: {
  what: string;
  decider: ActionDecider;
  inputs?: Record<string, string>;
  params?: Json;
  verdict: "cached" | "run" | "may";
  reasons?: string[];
  revived?: boolean;
}[] = [
  {
    what: "a record with every component",
    decider: decider({ records: [current()] }),
    verdict: "cached",
  },
  { what: "no record", decider: decider({}), verdict: "run", reasons: ["never ran"] },
  {
    what: "a config field",
    decider: decider({ records: [with_({ slice: { ...SLICE, "optimize.lr": 0.05 } })] }),
    verdict: "run",
    reasons: ["config optimize.lr: 0.05 → 0.1"],
  },
  {
    what: "an input digest",
    decider: decider({ records: [current()] }),
    inputs: { ...INPUTS, encode: "f".repeat(64) },
    verdict: "run",
    reasons: ["input encode changed eeeeeeeeeeee → ffffffffffff"],
  },
  {
    what: "a source module",
    decider: decider({
      records: [
        with_({ code: { ...CODE, modules: { ...CODE.modules, "lib/optim/adam.ts": "a0" } } }),
      ],
    }),
    verdict: "run",
    reasons: ["source lib/optim/adam.ts changed"],
  },
  {
    what: "an npm version",
    decider: decider({
      records: [with_({ code: { ...CODE, npm: { "onnxruntime-node": "1.29.0" } } })],
    }),
    verdict: "run",
    reasons: ["onnxruntime-node 1.29.0 → 1.30.0"],
  },
  {
    what: "the task version",
    decider: decider({ records: [with_({ version: "0" })] }),
    verdict: "run",
    reasons: ["version 0 → 1"],
  },
  {
    what: "the item's parameters",
    decider: decider({ records: [[record({}, INPUTS, { md5: "a" }), {}]] }),
    params: { md5: "b" },
    verdict: "run",
    reasons: ["item parameters changed"],
  },
  {
    what: "--force",
    decider: decider({ records: [current()], forced: true }),
    verdict: "run",
    reasons: ["--force"],
  },
  {
    what: "a failure before",
    decider: decider({ failure: "the decoder gave NaN" }),
    verdict: "run",
    reasons: ["failed before: the decoder gave NaN"],
  },
  {
    what: "an interruption",
    decider: decider({ checkpoint: { step: 30, of: 60 } }),
    verdict: "run",
    reasons: ["interrupted at step 30/60, resumes from its checkpoint"],
  },
  {
    what: "a superseded record with the key (back to an earlier setting)",
    decider: decider({
      records: [with_({ slice: { ...SLICE, "optimize.lr": 0.05 } })],
      superseded: [current()],
    }),
    verdict: "cached",
    revived: true,
  },
  {
    what: "an input not known yet, with a record that may match it",
    decider: decider({ records: [current()] }),
    inputs: { ...INPUTS, encode: pendingDigest("encode") },
    verdict: "may",
    reasons: ["reruns if the output of encode changes (encode would run first)"],
  },
  {
    what: "a record of another dataset on a shared cache",
    decider: decider({
      records: [with_({ slice: { ...SLICE, "dataset.kind": "folder" } })],
      scope: ["dataset.kind"],
    }),
    verdict: "run",
    reasons: ["never ran for this dataset"],
  },
  {
    what: "a record from before code identity, not adopted",
    decider: (() => {
      const legacy = { version: "1", source: "s".repeat(64), config: hashJson(SLICE) };
      const hash = hashJson({ task: TASK, v: "1", s: legacy.source, c: legacy.config });
      const rec = { ...record({}), taskHash: hash, key: "legacy" };
      const d = decider({ legacy: { hash, components: legacy } });
      (d.facts.records as Map<string, typeof rec>).set("7", rec);
      return d;
    })(),
    verdict: "run",
    reasons: ["recorded before its code was part of the key"],
  },
];

Deno.test("ActionDecider: one row per kind of key component", async () => {
  const wrong: string[] = [];
  for (const row of ROWS) {
    const d = await row.decider.decide("7", row.inputs ?? INPUTS, paramsHash(row.params));
    const got = {
      verdict: d.verdict,
      reasons: d.verdict === "cached" ? undefined : d.reasons.map((r) => r.text),
      revived: d.verdict === "cached" ? d.revived : undefined,
    };
    const want = {
      verdict: row.verdict,
      reasons: row.reasons,
      revived: row.verdict === "cached" ? row.revived ?? false : undefined,
    };
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      wrong.push(`${row.what}: expected ${JSON.stringify(want)}, found ${JSON.stringify(got)}`);
    }
  }
  assertEquals(wrong, []);
});

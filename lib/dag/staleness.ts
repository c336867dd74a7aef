/**
 * The one decision: whether an action is cached, and if not, why it runs. `run`, `--dry-run`,
 * `explain` and `status` all ask it, item by item, with the same components.
 *
 * An action is cached when a record with its key exists (the current one, or a superseded one
 * whose objects are still in the store: returning to an earlier setting is a hit). A plan may
 * not know every input: an upstream action that would run first has no output yet, and a URL
 * without a pin is unknown until fetched. Such an item is certain to run when no record could
 * match whatever that input turns out to be; otherwise it *may* run, and the plan says on what
 * it depends. A run knows every input, so its decisions are always hit or run.
 *
 * Reasons name only what changed against the item's current record: a config field (old →
 * new), an input (old and new digest prefixes), a module of the task's code (`source
 * lib/optim/adam.ts changed`), an npm package's version (`onnxruntime-node 1.30.0 → 1.31.0`),
 * the version, the parameters; or that it never ran, failed before, or is forced.
 *
 * The decision and the reasons it gives are one concept, read by every command, hence a module
 * of over 400 lines.
 *
 * @module
 */
import type { Json } from "../store/canonical.ts";
import {
  type ActionRecord,
  AGGREGATE_ITEM,
  type CodeIdentity,
  type FailureRecord,
  type KeyComponents,
  type LegacyTaskComponents,
  type TaskComponents,
} from "../store/records.ts";
import type { RecordLookup } from "../store/record_cursor.ts";
import { actionKey } from "./action_key.ts";
import { diffSlices } from "./config.ts";
import { UNKNOWN_FILE } from "./file_inputs.ts";
import {
  codeChanges,
  interruptedReason,
  provisionalReason,
  shortDigest,
  shown,
  type StaleReason,
} from "./stale_reasons.ts";

export { codeChanges, interruptedReason, type StaleReason };

/** What the decision says about one action. */
export type Decision =
  /** Cached; a revived record replaces `current`, the item's current record. */
  | {
    verdict: "cached";
    key: string;
    record: ActionRecord;
    revived: boolean;
    current?: ActionRecord;
  }
  /**
   * It runs; `key` is undefined when an input is not known yet (a plan). `current` is the
   * item's current record (superseded once the action is recorded) and `failedBefore` says
   * whether a failure record is to be cleared then.
   */
  | {
    verdict: "run";
    key?: string;
    reasons: StaleReason[];
    current?: ActionRecord;
    failedBefore?: boolean;
  }
  /** It runs only if an input not known yet turns out different from what a record has. */
  | { verdict: "may"; reasons: StaleReason[] };

/** Prefix of an input digest whose producer would run first (a plan). */
const PENDING = "pending:";

/**
 * The input digest that stands for the output of `task`, which a plan would run first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(pendingDigest("scale"), "pending:scale");
 * ```
 */
export function pendingDigest(task: string): string {
  return PENDING + task;
}

/**
 * Whether an input digest is not known yet (its producer would run first, or it names a file
 * that is unknown until fetched).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(isProvisional(pendingDigest("scale")), true);
 * assert.equal(isProvisional("ab".repeat(32)), false);
 * ```
 */
export function isProvisional(digest: string): boolean {
  return digest.startsWith(PENDING) || digest.startsWith(UNKNOWN_FILE);
}

/** What the decision needs to know about a task. */
export interface TaskFacts {
  task: string;
  components: TaskComponents;
  /** The code identity `components.code` is the hash of. */
  code: CodeIdentity;
  taskHash: string;
  slice: Record<string, Json>;
  /**
   * Current records, superseded records and failures, by item id: Maps, or cursors that read
   * them beside items arriving in id order (lib/store/record_cursor.ts).
   */
  records: RecordLookup<ActionRecord>;
  superseded: RecordLookup<ActionRecord[]>;
  failures: RecordLookup<FailureRecord>;
  /** `--force` of this task. */
  forced: boolean;
  /** Config fields that say which dataset a record belongs to (see `TaskCommon.scope`). */
  scope?: readonly string[];
  /** Task-wide components, code identities and config slices recorded earlier, by hash. */
  recordedComponents(hash: string): Promise<TaskComponents | LegacyTaskComponents | null>;
  recordedCode(hash: string): Promise<CodeIdentity | null>;
  recordedSlice(hash: string): Promise<Record<string, Json> | null>;
  /** Whether every object of a record is still in the store. */
  objectsPresent(record: ActionRecord): Promise<boolean>;
  /**
   * How far an interrupted action with key `key` got, from the checkpoint it left (`step`
   * unknown when the task does not say); null when it left none.
   */
  checkpoint?(key: string): Promise<{ step?: number; of?: number } | null>;
}

/**
 * Decides the actions of one task.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { taskHash } from "./action_key.ts";
 *
 * const components = { version: "1", code: "c0de", config: "c" };
 * const decider = new ActionDecider({
 *   task: "square", components, code: { modules: {}, npm: {} },
 *   taskHash: taskHash("square", components), slice: {}, records: new Map(),
 *   superseded: new Map(), failures: new Map(), forced: false,
 *   recordedComponents: () => Promise.resolve(null), recordedCode: () => Promise.resolve(null),
 *   recordedSlice: () => Promise.resolve(null), objectsPresent: () => Promise.resolve(true),
 * });
 * const decision = await decider.decide("7", {}, undefined);
 * assert.equal(decision.verdict, "run");
 * assert.deepEqual(decision.verdict === "run" && decision.reasons, [
 *   { kind: "new", text: "never ran" },
 * ]);
 * ```
 */
export class ActionDecider {
  readonly facts: TaskFacts;
  readonly #configReasons = new Map<string, Promise<StaleReason[]>>();

  constructor(facts: TaskFacts) {
    this.facts = facts;
  }

  /** The components of an action of this task with these inputs and parameters. */
  components(inputs: Record<string, string>, params: string | undefined): KeyComponents {
    const { version, code, config } = this.facts.components;
    const comps: KeyComponents = { version, code, config, inputs };
    if (params !== undefined) comps.params = params;
    return comps;
  }

  /** The components the current record of item `id` was keyed with (null without a record). */
  async recordedComponentsOf(id: string): Promise<KeyComponents | null> {
    const rec = await this.facts.records.get(id);
    if (!rec) return null;
    const parts = await this.facts.recordedComponents(rec.taskHash);
    const comps: KeyComponents = {
      version: parts?.version ?? "?",
      code: parts === null ? "?" : "code" in parts ? parts.code : `source file ${parts.source}`,
      config: parts?.config ?? "?",
      inputs: rec.inputs,
    };
    if (rec.params !== undefined) comps.params = rec.params;
    return comps;
  }

  /**
   * The decision for item `id` with these input digests and parameter hash. The common case of
   * a no-op run (same task hash, parameters and inputs as the current record) is answered
   * without hashing or waiting.
   */
  decide(
    id: string,
    inputs: Record<string, string>,
    params: string | undefined,
  ): Decision | Promise<Decision> {
    const rec = this.facts.records.get(id);
    if (rec instanceof Promise) return rec.then((r) => this.#decideWith(id, r, inputs, params));
    return this.#decideWith(id, rec, inputs, params);
  }

  #decideWith(
    id: string,
    rec: ActionRecord | undefined,
    inputs: Record<string, string>,
    params: string | undefined,
  ): Decision | Promise<Decision> {
    const f = this.facts;
    if (
      rec && !f.forced && rec.taskHash === f.taskHash && rec.params === params &&
      sameInputs(rec.inputs, inputs)
    ) {
      return { verdict: "cached", key: rec.key, record: rec, revived: false };
    }
    return this.#slow(id, rec, inputs, params);
  }

  async #slow(
    id: string,
    rec: ActionRecord | undefined,
    inputs: Record<string, string>,
    params: string | undefined,
  ): Promise<Decision> {
    const f = this.facts;
    const provisional = Object.keys(inputs).filter((name) => isProvisional(inputs[name]));
    const key = provisional.length ? undefined : actionKey(f.taskHash, inputs, params);
    if (f.forced) return await this.#runs(id, inputs, params, key, rec);
    if (key !== undefined) {
      if (rec?.key === key) return { verdict: "cached", key, record: rec, revived: false };
      const old = (await f.superseded.get(id))?.find((o) => o.key === key);
      if (old && await f.objectsPresent(old)) {
        return { verdict: "cached", key, record: old, revived: true, current: rec };
      }
      return await this.#runs(id, inputs, params, key, rec);
    }
    // Some input is not known yet: could any record still match once it is?
    const candidates = [...(rec ? [rec] : []), ...((await f.superseded.get(id)) ?? [])];
    for (const r of candidates) {
      if (
        r.taskHash === f.taskHash && r.params === params &&
        sameKnownInputs(r.inputs, inputs) && (r === rec || await f.objectsPresent(r))
      ) {
        return {
          verdict: "may",
          reasons: provisional.sort().map((n) => provisionalReason(n, inputs[n])),
        };
      }
    }
    return await this.#runs(id, inputs, params, undefined, rec);
  }

  /** The decision that item `id` runs, with why, given its current record `rec`. */
  async #runs(
    id: string,
    inputs: Record<string, string>,
    params: string | undefined,
    key: string | undefined,
    rec: ActionRecord | undefined,
  ): Promise<Decision> {
    const failure = await this.facts.failures.get(id);
    const reasons = await this.#reasons(id, inputs, params, key, rec, failure);
    return { verdict: "run", key, reasons, current: rec, failedBefore: failure !== undefined };
  }

  /**
   * Why item `id` runs: what differs from its current record `rec` (inputs not known yet aside),
   * and whether it failed before (`failure`).
   */
  async #reasons(
    id: string,
    inputs: Record<string, string>,
    params: string | undefined,
    key: string | undefined,
    rec: ActionRecord | undefined,
    failure: FailureRecord | undefined,
  ): Promise<StaleReason[]> {
    const f = this.facts;
    if (f.forced) return [{ kind: "forced", text: "--force" }];
    const resumes = key === undefined ? null : await f.checkpoint?.(key);
    const interrupted: StaleReason[] = resumes ? [interruptedReason(resumes)] : [];
    const failed: StaleReason[] = failure && (!rec || failure.key === key) && !resumes
      ? [{ kind: "failed", text: `failed before: ${failure.reason}` }]
      : [];
    if (!rec) {
      return interrupted.length || failed.length
        ? [...interrupted, ...failed]
        : [{ kind: "new", text: "never ran" }];
    }
    if (rec.taskHash !== f.taskHash && await this.#otherDataset(rec.taskHash)) {
      return [...interrupted, { kind: "new", text: "never ran for this dataset" }];
    }
    const out: StaleReason[] = [];
    if (rec.taskHash !== f.taskHash) out.push(...await this.#taskReasons(rec.taskHash));
    const names = new Set([...Object.keys(rec.inputs), ...Object.keys(inputs)]);
    for (const name of [...names].sort()) {
      const before = rec.inputs[name];
      const after = inputs[name];
      if (
        before === after || (after !== undefined && isProvisional(after) && before !== undefined)
      ) {
        continue;
      }
      const text = before === undefined
        ? `new input ${name}`
        : after === undefined
        ? `input ${name} removed`
        : `input ${name} changed ${shortDigest(before)} → ${shortDigest(after)}`;
      out.push({ kind: "inputs", text });
    }
    if ((rec.params ?? "") !== (params ?? "")) {
      const text = id === AGGREGATE_ITEM
        ? "what it reads from outside changed (its fingerprint)"
        : "item parameters changed";
      out.push({ kind: "params", text });
    }
    return [...interrupted, ...out, ...failed];
  }

  /** What differs between a recorded task hash's components and the current ones. */
  #taskReasons(hash: string): Promise<StaleReason[]> {
    let reasons = this.#configReasons.get(hash);
    if (!reasons) {
      reasons = this.#diffTask(hash);
      this.#configReasons.set(hash, reasons);
    }
    return reasons;
  }

  /** Whether records of task hash `hash` belong to another dataset (see `TaskCommon.scope`). */
  async #otherDataset(hash: string): Promise<boolean> {
    const scope = this.facts.scope ?? [];
    if (scope.length === 0) return false;
    const was = await this.facts.recordedComponents(hash);
    if (!was || was.config === this.facts.components.config) return false;
    const before = await this.facts.recordedSlice(was.config);
    if (!before) return false;
    return diffSlices(before, this.facts.slice).some((d) =>
      scope.some((s) => d.field === s || d.field.startsWith(`${s}.`))
    );
  }

  async #codeReasons(hash: string): Promise<StaleReason[]> {
    const was = await this.facts.recordedCode(hash);
    if (!was) return [{ kind: "source", text: "code changed (the earlier code is not recorded)" }];
    const changes = codeChanges(was, this.facts.code);
    return changes.length ? changes : [{ kind: "source", text: "code changed" }];
  }

  async #diffTask(hash: string): Promise<StaleReason[]> {
    const f = this.facts;
    const was = await f.recordedComponents(hash);
    if (!was) {
      return [{ kind: "version", text: "recorded with components that are no longer known" }];
    }
    const out: StaleReason[] = [];
    const now = f.components;
    if (was.version !== now.version) {
      out.push({ kind: "version", text: `version ${was.version} → ${now.version}` });
    }
    if (!("code" in was)) {
      out.push({ kind: "source", text: "recorded before its code was part of the key" });
    } else if (was.code !== now.code) out.push(...await this.#codeReasons(was.code));
    if (was.config !== now.config) {
      const before = await f.recordedSlice(was.config);
      if (!before) {
        out.push({ kind: "config", text: "config changed (previous values not recorded)" });
      } else {
        for (const d of diffSlices(before, f.slice)) {
          out.push({
            kind: "config",
            text: `config ${d.field}: ${shown(d.before)} → ${shown(d.after)}`,
          });
        }
      }
    }
    return out;
  }
}

function sameInputs(a: Record<string, string>, b: Record<string, string>): boolean {
  let n = 0;
  for (const key in b) {
    if (a[key] !== b[key]) return false;
    n++;
  }
  return Object.keys(a).length === n;
}

/** Same input names, and equal digests wherever the new one is known. */
function sameKnownInputs(recorded: Record<string, string>, now: Record<string, string>): boolean {
  let n = 0;
  for (const key in now) {
    if (!(key in recorded)) return false;
    if (!isProvisional(now[key]) && recorded[key] !== now[key]) return false;
    n++;
  }
  return Object.keys(recorded).length === n;
}

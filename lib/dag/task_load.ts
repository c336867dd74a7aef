/**
 * Loading one task for a plan or a run: its records (current, superseded, failures), its
 * identity (version, code, config slice; recorded for later explanations in a run), the
 * decision made of them, its declared files planned, the checkpoints interrupted actions left,
 * and records from before code identity adopted under their new keys as they are read
 * (adoption.ts). Records are not loaded: the decision reads them beside the items.
 *
 * @module
 */
import { KEYS } from "../store/records.ts";
import type { Json } from "../store/canonical.ts";
import { legacyAdopter } from "./adoption.ts";
import { checkpointKeys, checkpointProgress } from "./item_context.ts";
import type { RunContext } from "./run_context.ts";
import { ActionDecider } from "./staleness.ts";
import type { EachTask, Task } from "./task.ts";
import { TaskFiles } from "./task_files.ts";
import { taskIdentity } from "./task_identity.ts";

/** A task loaded for a plan or a run. */
export interface LoadedTask {
  decider: ActionDecider;
  files: TaskFiles;
  /** Why its files could not be planned (the plan and the run fail the task alike with it). */
  error?: unknown;
  /** How many records written before code identity were adopted, so far (they are adopted as the records are read). */
  adopted(): number;
}

/** Loads `task` for `run`; `slice` is its config slice, `config` its projected config. */
export async function loadTask(
  run: RunContext,
  task: Task,
  { slice, config }: { slice: Record<string, Json>; config: unknown },
): Promise<LoadedTask> {
  const { records, store, dryRun } = run.options;
  const [identity, checkpoints] = await Promise.all([
    taskIdentity(task, slice, run.code),
    checkpointKeys(store.root, task.name),
  ]);
  const { components } = identity;
  if (!dryRun) {
    run.writer.set(KEYS.configSlice(task.name, components.config), slice);
    run.writer.set(KEYS.codeIdentity(components.code), identity.code.identity);
    run.writer.set(KEYS.taskComponents(task.name, identity.hash), components);
  }
  const files = new TaskFiles(task, { store, records, aliases: run.aliases }, components.code);
  let error: unknown;
  try {
    await files.plan(run.options.config, config);
  } catch (e) {
    // The plan and the run fail the task alike, with the same message.
    error = e;
  }
  // Each adopted item once, however often its record is read (a migration only).
  const adopted = new Set<string>();
  // Records from before code identity are adopted as they are read (see adoption.ts).
  const adopt = legacyAdopter({
    task: task.name,
    source: task.source,
    declared: task.config,
    components,
    taskHash: identity.hash,
    slice,
    fileInputs: files.keyedOnContent(),
    recordedComponents: (hash) => records.taskComponents(task.name, hash),
    recordedSlice: (hash) => records.configSlice(task.name, hash),
  }, (id, rec) => {
    if (adopted.has(id)) return;
    adopted.add(id);
    if (!dryRun) run.writer.set(KEYS.action(task.name, id), rec);
  });
  const decider = new ActionDecider({
    task: task.name,
    code: identity.code.identity,
    components,
    taskHash: identity.hash,
    slice,
    records: records.actionCursor(task.name, adopt),
    superseded: records.supersededCursor(task.name),
    failures: records.failureCursor(task.name),
    forced: run.options.force?.includes(task.name) ?? false,
    scope: task.scope,
    recordedComponents: (hash) => records.taskComponents(task.name, hash),
    recordedCode: (hash) => records.codeIdentity(hash),
    recordedSlice: (hash) => records.configSlice(task.name, hash),
    objectsPresent: async (rec) => {
      for (const d of Object.values(rec.objects)) if (!(await store.has(d))) return false;
      return true;
    },
    checkpoint: (key) =>
      checkpoints.has(key)
        ? checkpointProgress(
          store,
          task.name,
          key,
          (bytes) => (task as EachTask).checkpointProgress?.(bytes, config),
        )
        : Promise.resolve(null),
  });
  return { decider, files, error, adopted: () => adopted.size };
}

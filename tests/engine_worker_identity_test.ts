/**
 * A remote worker runs a wave only when its code is the coordinator's: it compares the task's
 * whole code identity (its modules and npm packages), not only the task file, and names what
 * differs.
 */
import { assertEquals, assertRejects } from "./fixtures/assert.ts";
import { CodeReader } from "../lib/dag/code_identity.ts";
import { TaskGraph } from "../lib/dag/graph.ts";
import { WORK_LIST_FORMAT, type WorkList } from "../lib/dag/remote.ts";
import { each } from "../lib/dag/task.ts";
import { taskIdentity } from "../lib/dag/task_identity.ts";
import { runWorker, WorkerError } from "../lib/dag/worker.ts";
import { ObjectStore } from "../lib/store/objects.ts";

Deno.test("a worker whose library code differs from the coordinator's refuses the wave, naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-worker-" });
  try {
    await Deno.writeTextFile(`${dir}/deno.json`, "{}");
    await Deno.writeTextFile(`${dir}/scale.ts`, 'import { factor } from "./factor.ts";\nfactor;\n');
    await Deno.writeTextFile(`${dir}/factor.ts`, "export const factor = 2;\n");
    const scale = each({
      name: "scale",
      deps: [],
      config: [],
      version: "1",
      source: `file://${dir}/scale.ts`,
      describe: "scale",
      items: () => Promise.resolve([]),
      run: () => Promise.resolve({ objects: {}, meta: null }),
    });
    const store = new ObjectStore(`${dir}/cache`);
    // The coordinator's wave, with its identity of the task.
    const coordinator = await taskIdentity(scale, {}, new CodeReader());
    const list: WorkList = {
      format: WORK_LIST_FORMAT,
      task: "scale",
      taskHash: coordinator.hash,
      code: coordinator.code.identity,
      config: {},
      files: {},
      shards: [{ digest: "", count: 0 }],
    };
    const listDigest = await store.putJson(list);
    const work = () =>
      runWorker({
        graph: new TaskGraph([scale]),
        store,
        listDigest,
        index: 0,
        count: 1,
        signal: new AbortController().signal,
        log: () => {},
      });
    // The same code: the worker takes the wave (empty here).
    assertEquals((await work()).assigned, 0);
    // A library module the task imports differs on the worker (the task file does not).
    await Deno.writeTextFile(`${dir}/factor.ts`, "export const factor = 30;\n");
    const e = await assertRejects(work, "coordinator → worker: source factor.ts changed");
    assertEquals(e instanceof WorkerError, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The remote wave's list and results, without a cluster: the coordinator's side (WaveSpool,
 * WaveList) and real workers (runWorker) in this process, against one store. Shards are
 * consecutive runs of the spool; workers read only their shard and announce each result on
 * its progress log; the coordinator imports what is announced, finds results a killed worker
 * wrote but never announced, ignores damaged log lines, and names the actions left without a
 * result. Results found when a list is written are imported instead of listed; failures are
 * listed again.
 */
import { join } from "node:path";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { CodeReader } from "../lib/dag/code_identity.ts";
import { TaskGraph } from "../lib/dag/graph.ts";
import { each } from "../lib/dag/task.ts";
import { taskIdentity } from "../lib/dag/task_identity.ts";
import { runWorker } from "../lib/dag/worker.ts";
import { progressPath, readResult, type WorkResult, writeResult } from "../lib/dag/remote.ts";
import { WaveList, WaveSpool } from "../lib/dag/wave_list.ts";
import type { Work } from "../lib/dag/pool.ts";
import { FlowGate } from "../lib/dag/flow_gate.ts";
import { sha256Hex } from "../lib/store/canonical.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { collectGarbage } from "../lib/store/maintenance.ts";
import { openRecords } from "../lib/store/records.ts";

const ITEMS = 50;
const SHARDS = 3;

async function setup(dir: string) {
  await Deno.writeTextFile(join(dir, "deno.json"), "{}");
  await Deno.writeTextFile(join(dir, "double.ts"), "export const twice = 2;\n");
  const double = each({
    name: "double",
    deps: [],
    config: [],
    version: "1",
    source: `file://${dir}/double.ts`,
    describe: "store each id twice",
    items: () => Promise.resolve([]),
    async run(ctx, item) {
      const digest = await ctx.store.put(new TextEncoder().encode(item.id.repeat(2)));
      return { objects: { out: digest }, meta: item.id };
    },
  });
  const store = new ObjectStore(join(dir, "cache"));
  const identity = await taskIdentity(double, {}, new CodeReader());
  const header = {
    task: "double",
    taskHash: identity.hash,
    code: identity.code.identity,
    config: {},
    files: {},
  };
  return { graph: new TaskGraph([double]), store, header };
}

function work(i: number): Work {
  const id = `item-${String(i).padStart(3, "0")}`;
  const key = sha256Hex(id);
  return {
    item: { id, inputs: {} },
    key,
    comps: { version: "1", code: "c", config: "k", inputs: {} },
    attempts: 0,
  };
}

async function spoolOf(store: ObjectStore, works: Work[]): Promise<WaveSpool> {
  const spool = new WaveSpool(store);
  for (const w of works) spool.add(w);
  await spool.flush();
  return spool;
}

/** Writes the list of `works` in `shards` shards, noting the ids of the results it imports. */
async function writeList(
  store: ObjectStore,
  header: Awaited<ReturnType<typeof setup>>["header"],
  works: Work[],
  shards: number,
) {
  const imported: string[] = [];
  const list = await WaveList.write(
    store,
    header,
    await spoolOf(store, works),
    shards,
    (w) => Promise.resolve(void imported.push(w.item.id)),
  );
  return { list, imported };
}

Deno.test("a wave's shards are run by workers and imported by position, announced or not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-wave-" });
  try {
    const { graph, store, header } = await setup(dir);
    const works = Array.from({ length: ITEMS }, (_, i) => work(i));
    const spool = await spoolOf(store, works);
    const imported = new Map<string, WorkResult>();
    const list = await WaveList.write(store, header, spool, SHARDS, (w, r) => {
      assertEquals(r.key, w.key, "a result is imported with its own action");
      imported.set(w.item.id, r);
      return Promise.resolve();
    });
    assert(list, "there is work to do");
    // Consecutive runs of the spool, split evenly: 16, 17, 17.
    assertEquals(list.header.shards.map((s) => s.count), [16, 17, 17]);
    const lines = (await Deno.readTextFile(store.path(list.header.shards[1].digest)))
      .trimEnd().split("\n").map((l) => JSON.parse(l).id);
    assertEquals(lines, works.slice(16, 33).map((w) => w.item.id));
    const shard = (index: number) =>
      runWorker({
        graph,
        store,
        listDigest: list.digest,
        index,
        count: SHARDS,
        signal: new AbortController().signal,
        log: () => {},
      });
    assertEquals(await shard(0), { assigned: 16, alreadyDone: 0, succeeded: 16, failed: 0 });
    assertEquals(await shard(1), { assigned: 17, alreadyDone: 0, succeeded: 17, failed: 0 });
    // Shard 2's worker was killed: it wrote results for its first 15 actions and announced
    // none of them; its log ends with a damaged line and a line of another list.
    const killed = works.slice(33, 48);
    for (const w of killed) {
      const digest = await store.put(new TextEncoder().encode(w.item.id.repeat(2)));
      await writeResult(store, "double", {
        id: w.item.id,
        key: w.key,
        output: { objects: { out: digest }, meta: w.item.id },
        ms: 1,
        host: "node-3",
      });
    }
    await Deno.writeTextFile(
      progressPath(store.root, list.digest, 2),
      `0 ${works[0].key}\n3 ${killed[3].key.slice(0, 20)}`,
    );
    await list.importAnnounced();
    assertEquals(imported.size, 33, "the announced results of shards 0 and 1");
    // A rerun of shard 0 finds everything done and announces it again: imported once.
    assertEquals(await shard(0), { assigned: 16, alreadyDone: 16, succeeded: 0, failed: 0 });
    await list.importAnnounced();
    assertEquals(imported.size, 33);
    assertEquals(await list.unfinished(), [2], "shard 2 has two actions without a result");
    assertEquals(imported.size, 48);
    const missing = (await Array.fromAsync(list.missing())).map((w) => w.item.id);
    assertEquals(missing, ["item-048", "item-049"]);
    // Every result imported is the worker's, and the store has what it names.
    const r = imported.get("item-020")!;
    assertEquals(r.output?.meta, "item-020");
    assertEquals(
      new TextDecoder().decode(await store.get(r.output!.objects.out)),
      "item-020item-020",
    );
    await list.remove();
    assertEquals(await store.has(list.digest), false);
    await spool.remove();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("results found when a wave is written are imported, failures are listed again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-wave-" });
  try {
    const { store, header } = await setup(dir);
    const works = Array.from({ length: 10 }, (_, i) => work(i));
    const digest = await store.put(new TextEncoder().encode("done"));
    await writeResult(store, "double", {
      id: works[2].item.id,
      key: works[2].key,
      output: { objects: { out: digest }, meta: null },
      ms: 1,
      host: "h",
    });
    await writeResult(store, "double", {
      id: works[5].item.id,
      key: works[5].key,
      error: { name: "Error", message: "out of memory", retryable: false },
      ms: 1,
      host: "h",
    });
    const { list, imported } = await writeList(store, header, works, 2);
    assertEquals(imported, ["item-002"]);
    assertEquals(list!.size, 9);
    // Shards are cut by position in the spool: the first lost the action already done.
    assertEquals(list!.header.shards.map((s) => s.count), [4, 5]);
    assertEquals(await readResult(store, "double", works[5].key), null, "the failure is retried");
    await list!.remove();
    // Nothing left to run: no list at all.
    assertEquals((await writeList(store, header, [works[2]], 1)).list, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two items with the same action key in one shard are both run, announced and imported", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-wave-" });
  try {
    const { graph, store, header } = await setup(dir);
    // Identical inputs and parameters make the same key (two copies of one image).
    const works = [work(0), work(1), work(2)];
    works[2].key = works[1].key;
    const { list, imported } = await writeList(store, header, works, 1);
    const summary = await runWorker({
      graph,
      store,
      listDigest: list!.digest,
      index: 0,
      count: 1,
      signal: new AbortController().signal,
      log: () => {},
    });
    assertEquals(summary, { assigned: 3, alreadyDone: 0, succeeded: 3, failed: 0 });
    await list!.importAnnounced();
    assertEquals(imported.sort(), ["item-000", "item-001", "item-002"]);
    assertEquals(await list!.unfinished(), []);
    await list!.remove();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gc keeps what results not imported yet name and removes orphaned progress logs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-wave-" });
  try {
    const { store } = await setup(dir);
    const bytes = (text: string) => new TextEncoder().encode(text);
    const [a, b, loose] = await Promise.all(["a", "b", "loose"].map((t) => store.put(bytes(t))));
    await writeResult(store, "double", {
      id: "x",
      key: sha256Hex("x"),
      output: { objects: { out: a }, meta: null },
      ms: 1,
      host: "h",
    });
    // A result file as earlier versions wrote it: the digest of an object holding the result.
    const held = await store.putJson({ id: "y", key: sha256Hex("y"), output: { objects: { b } } });
    const old = join(store.root, "results", "double", sha256Hex("y").slice(0, 2), sha256Hex("y"));
    await Deno.mkdir(join(old, ".."), { recursive: true });
    await Deno.writeTextFile(old, held);
    await Deno.mkdir(join(store.root, "waves", "ab"), { recursive: true });
    await Deno.writeTextFile(join(store.root, "waves", "ab", "0.log"), `0 ${sha256Hex("x")}\n`);
    const records = await openRecords(store.root);
    try {
      const r = await collectGarbage(store, records);
      assertEquals(r.objectsDeleted, 1, "only the object nothing names");
      for (const d of [a, b, held]) assert(await store.has(d), `${d} is kept`);
      assertEquals(await store.has(loose), false);
      assertEquals(r.tempFilesRemoved, 1);
      assertEquals(await Deno.stat(join(store.root, "waves")).then(() => true, () => false), false);
      assertEquals((await readResult(store, "double", sha256Hex("y")))?.id, "y");
    } finally {
      records.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("actions spooled and not written yet count as in flight, so listings wait for the disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-wave-" });
  try {
    const store = new ObjectStore(join(dir, "cache"));
    const gate = new FlowGate(100);
    const spool = new WaveSpool(store, gate);
    // A listing faster than the disk: every line waits in memory until it is written.
    for (let i = 0; i < 500; i++) spool.add(work(i));
    assertEquals(gate.inFlight, 500);
    const room = gate.room(new AbortController().signal);
    assert(room !== undefined, "a listing would wait now");
    await room;
    assert(gate.inFlight < 100, `room once the lines are written (${gate.inFlight} in flight)`);
    await spool.flush();
    assertEquals(gate.inFlight, 0);
    const ids = (await Deno.readTextFile(spool.path)).trimEnd().split("\n")
      .map((l) => JSON.parse(l).item.id);
    assertEquals(ids, Array.from({ length: 500 }, (_, i) => work(i).item.id));
    await spool.remove();
    assertEquals(await Deno.stat(spool.path).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * An object found damaged in the run that reads it is built again in that run: the item that
 * made it runs again, then the action that read it — whether the object is missing (found
 * before the action runs) or corrupt (found by the action's read, which quarantines it), read
 * by a per-item action, an aggregate action or a batch of a batched task. Exactly those actions
 * run, the run ends with exit 0, and the next run has nothing to do.
 */
import { join } from "node:path";
import { assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";
import { startMirror } from "./fixtures/mirror.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";
import { mirroredConfig, type Ran, tasksRan } from "./fixtures/project.ts";
import { writeTinyVae } from "./fixtures/vae.ts";
import { ObjectStore } from "../lib/store/objects.ts";
import { openRecords } from "../lib/store/records.ts";

/** The digest of an object a task's recorded action of `item` produced. */
async function objectOf(cache: string, task: string, item: string, name: string) {
  const records = await openRecords(cache);
  try {
    return (await records.actions(task)).get(item)!.objects[name];
  } finally {
    records.close();
  }
}

/** Flips one byte in the middle of a stored object (its size and name kept). */
async function flipByte(cache: string, digest: string): Promise<void> {
  const path = new ObjectStore(cache).path(digest);
  const bytes = await Deno.readFile(path);
  bytes[bytes.length >> 1] ^= 0xff;
  await Deno.writeFile(path, bytes);
}

/**
 * Tasks that executed something, with how many items: the items each reported (a rebuild comes
 * after its task ended), or what an aggregate task's end counted.
 */
function ran(r: Ran): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of r.events) {
    if (e.event === "item" && e.status === "ran") {
      out[e.task as string] = (out[e.task as string] ?? 0) + 1;
    }
  }
  for (const [task, n] of tasksRan(r)) if (n > (out[task] ?? 0)) out[task] = n;
  return out;
}

function logs(r: Ran): string {
  return r.events.filter((e) => e.event === "log").map((e) => String(e.message)).join("\n");
}

Deno.test("a missing input object of a per-item action is rebuilt in the run that finds it", async () => {
  const p = await ToyProject.create({ count: 10, scale: 2, offset: 5 });
  try {
    assertEquals((await p.run(["run"])).code, 0);
    const report = await Deno.readTextFile(p.out);
    await Deno.remove(
      new ObjectStore(p.cache).path(await objectOf(p.cache, "square", "7", "value")),
    );
    const r = await p.run(["run", "--force", "scale", "--json"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(ran(r), { square: 1, scale: 10 });
    assertStringIncludes(logs(r), "is missing");
    assertStringIncludes(
      logs(r),
      "running again the actions built from them (square 7, then scale 7)",
    );
    assertEquals(await Deno.readTextFile(p.out), report);
    const again = await p.run(["run", "--json"]);
    assertEquals(ran(again), {});
  } finally {
    await p.cleanup();
  }
});

Deno.test("a corrupt input object is quarantined and rebuilt, for a per-item and an aggregate reader", async () => {
  const p = await ToyProject.create({ count: 10, scale: 2, offset: 5 });
  try {
    assertEquals((await p.run(["run"])).code, 0);
    const report = await Deno.readTextFile(p.out);
    // A per-item reader: scale reads square's output.
    await flipByte(p.cache, await objectOf(p.cache, "square", "9", "value"));
    const r = await p.run(["run", "--force", "scale", "--json"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(ran(r), { square: 1, scale: 10 });
    assertStringIncludes(logs(r), "is corrupt");
    assertEquals((await Array.fromAsync(Deno.readDir(join(p.cache, "quarantine")))).length, 1);
    // An aggregate reader: total reads every offset.
    await flipByte(p.cache, await objectOf(p.cache, "offset", "4", "value"));
    const t = await p.run(["run", "--force", "total", "--json"]);
    assertEquals(t.code, 0, t.stderr);
    assertEquals(ran(t), { offset: 1, total: 1 });
    assertStringIncludes(logs(t), "(offset 4, then total)");
    assertEquals(await Deno.readTextFile(p.out), report);
    assertEquals(ran(await p.run(["run", "--json"])), {});
  } finally {
    await p.cleanup();
  }
});

Deno.test("an aggregate's own output found damaged when publishing it is built again", async () => {
  const p = await ToyProject.create({ count: 5 });
  try {
    assertEquals((await p.run(["run"])).code, 0);
    const report = await Deno.readTextFile(p.out);
    await Deno.remove(
      new ObjectStore(p.cache).path(await objectOf(p.cache, "total", "*", "report")),
    );
    const r = await p.run(["run", "--json"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(ran(r), { total: 1 });
    assertEquals(await Deno.readTextFile(p.out), report);
  } finally {
    await p.cleanup();
  }
});

Deno.test({
  name: "a batched task: a missing latent and a corrupt image are rebuilt, then optimized",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const mirror = await startMirror({ count: 4, imageSize: 32, seed: 6 });
  const dir = await Deno.makeTempDir({ prefix: "latentforge-damage-" });
  try {
    const vae = await writeTinyVae(join(dir, "vae"));
    const p = await PipelineProject.create(mirroredConfig({
      preprocess: { size: 32 },
      model: { scaling_factor: 1, providers: ["cpu"], threads: 1 },
      optimize: { max_steps: 2, batch_size: 4 },
      package: { formats: ["npz"], samples: 0 },
    }, { mirror, vae, labels: false, pin: ["spec"] }));
    try {
      assertEquals((await p.run(["run", "optimize"])).code, 0);
      const ids = [
        ...(await (async () => {
          const records = await openRecords(p.cache);
          try {
            return (await records.actions("optimize")).keys();
          } finally {
            records.close();
          }
        })()),
      ].sort();
      assertEquals(ids.length, 4);
      // Missing before the batch takes it: found by the check before queuing.
      await Deno.remove(
        new ObjectStore(p.cache).path(await objectOf(p.cache, "encode", ids[0], "latent")),
      );
      // Corrupt: found by optimize's own read (it computes the tensor from the image), inside
      // the batch.
      await flipByte(p.cache, await objectOf(p.cache, "fetch-images", ids[1], "image"));
      const r = await p.run(["run", "optimize", "--force", "optimize", "--json"]);
      assertEquals(r.code, 0, r.stderr);
      // The image is downloaded again and preprocess records it again (the same tensor: the
      // encoder's latent of that image still holds); item 0's latent is encoded again.
      assertEquals(ran(r), { "fetch-images": 1, preprocess: 1, encode: 1, optimize: 4 });
      assertStringIncludes(logs(r), "is missing");
      assertStringIncludes(logs(r), "is corrupt");
      assertEquals(ran(await p.run(["run", "optimize", "--json"])), {});
    } finally {
      await p.cleanup();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await mirror.close();
  }
});

Deno.test("an aggregate's output found missing outside an action: its record is dropped, the next run rebuilds it", async () => {
  const p = await ToyProject.create({ count: 4 });
  try {
    assertEquals((await p.run(["run"])).code, 0);
    const report = await Deno.readTextFile(p.out);
    // square lists its items from numbers' list (in items(), not an action).
    await Deno.remove(
      new ObjectStore(p.cache).path(await objectOf(p.cache, "numbers", "*", "list")),
    );
    const r = await p.run(["run", "--force", "square", "--json"]);
    assertEquals(r.code, 1, r.stderr);
    assertStringIncludes(
      logs(r),
      "the next run builds again the actions built from them (numbers 1)",
    );
    const again = await p.run(["run", "--json"]);
    assertEquals(again.code, 0, again.stderr);
    assertEquals(ran(again).numbers, 1);
    assertEquals(await Deno.readTextFile(p.out), report);
  } finally {
    await p.cleanup();
  }
});

import { assert, assertEquals, assertMatch, assertStringIncludes } from "./fixtures/assert.ts";
import { parse, ToyProject } from "./fixtures/toy_harness.ts";

/** Starts a run and resolves once it holds the lease (its run-start event is out). */
async function startRun(p: ToyProject, args: string[], env: Record<string, string>) {
  const child = p.command(["run", "--json", ...args], env).spawn();
  const reader = child.stdout.getReader();
  let seen = "";
  while (!seen.includes('"event":"run-start"')) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  const rest = (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    return seen;
  })();
  return { child, output: rest };
}

Deno.test("kill -9 at random moments, 20 times, then a final run: same output, nothing corrupt", async () => {
  const count = 1200;
  const expected = await ToyProject.cleanOutput(count);
  const p = await ToyProject.create({ count });
  try {
    const env = { TOY_SLEEP_MS: "12" };
    let killed = 0;
    for (let i = 0; i < 20; i++) {
      const child = p.command(["run", "--concurrency", "2"], env).spawn();
      const delay = 150 + Math.random() * 800;
      const exited = await Promise.race([
        child.status.then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), delay)),
      ]);
      if (!exited) {
        child.kill("SIGKILL");
        killed++;
      }
      const status = await child.status;
      await child.stdout.cancel();
      await child.stderr.cancel();
      // Each run after a kill must start at once: the dead holder's lease expires on its own.
      assert(status.code !== 2, "a run was refused because of a dead run's lease");
    }
    assertEquals(killed, 20, "every run was killed mid-way");
    const final = await p.run(["run", "--json", "--concurrency", "16"], env);
    assertEquals(final.code, 0, final.stderr);
    assertEquals(await Deno.readTextFile(p.out), expected);
    const verify = await p.run(["verify"]);
    assertEquals(verify.code, 0, verify.stdout + verify.stderr);
    assertStringIncludes(verify.stdout, "no corrupt objects");
    const again = await p.run(["run", "--json"]);
    assertEquals([...ToyProject.ran(again).values()].reduce((a, b) => a + b), 0);
  } finally {
    await p.cleanup();
  }
});

Deno.test("a second run while one holds the cache exits 2 naming the holder; --wait waits", async () => {
  const p = await ToyProject.create({ count: 60 });
  try {
    // The first run holds its items at scale until the gate file appears.
    const gate = `${p.dir}/gate`;
    const env = { TOY_GATE: gate };
    const first = await startRun(p, ["--concurrency", "2"], env);
    const second = await p.run(["run"]);
    assertEquals(second.code, 2, second.stderr);
    assertMatch(
      second.stderr,
      new RegExp(`in use by "run" \\(pid ${first.child.pid} on .+\\) since \\d{4}-`),
    );
    assertStringIncludes(second.stderr, "--wait");
    const gc = await p.run(["gc"]);
    assertEquals(gc.code, 2, "gc must not run beside a run");
    const waiter = p.command(["run", "--wait", "--json"]).spawn();
    const stderr = waiter.stderr.getReader();
    let said = "";
    while (!said.includes(`waiting for pid ${first.child.pid}`)) {
      const { value, done } = await stderr.read();
      if (done) break;
      said += new TextDecoder().decode(value);
    }
    assertStringIncludes(said, `waiting for pid ${first.child.pid}`);
    await Deno.writeTextFile(gate, "");
    const drain = async () => {
      for (let r = await stderr.read(); !r.done; r = await stderr.read()) {
        said += new TextDecoder().decode(r.value);
      }
    };
    await Promise.all([drain(), new Response(waiter.stdout).text()]);
    assertEquals((await waiter.status).code, 0, said);
    assertEquals((await first.child.status).code, 0);
    await first.output;
    assertEquals((await p.run(["verify"])).code, 0);
    assertEquals(await Deno.readTextFile(p.out), await ToyProject.cleanOutput(60));
  } finally {
    await p.cleanup();
  }
});

Deno.test("SIGINT stops taking work, finishes in-flight writes and exits 130", async () => {
  const p = await ToyProject.create({ count: 200 });
  try {
    const env = { TOY_SLEEP_MS: "30" };
    const run = await startRun(p, ["--concurrency", "2"], env);
    await new Promise((r) => setTimeout(r, 800));
    run.child.kill("SIGINT");
    const status = await run.child.status;
    const out = parse(status.code, new TextEncoder().encode(await run.output), new Uint8Array());
    assertEquals(status.code, 130);
    const end = out.events.find((e) => e.event === "run-end");
    assertEquals(end?.status, "interrupted");
    const done = out.events.filter((e) => e.event === "item" && e.status === "ran").length;
    assert(done > 0 && done < 600, `expected a partial run, ${done} actions ran`);
    assertEquals(out.events.filter((e) => e.event === "item" && e.status === "failed").length, 0);
    assertEquals((await p.run(["verify"])).code, 0);
    const resumed = await p.run(["run", "--json"]);
    assertEquals(resumed.code, 0);
    const rerun = [...ToyProject.ran(resumed).values()].reduce((a, b) => a + b);
    assert(rerun < 602, `resumed run redid finished work: ${rerun} actions`);
    assertEquals(await Deno.readTextFile(p.out), await ToyProject.cleanOutput(200));
  } finally {
    await p.cleanup();
  }
});

Deno.test("gc deletes only what no kept run references", async () => {
  const p = await ToyProject.create({ count: 30 });
  try {
    for (const offset of [1000, 2000, 3000]) {
      await p.writeConfig({ count: 30, offset });
      assertEquals((await p.run(["run"])).code, 0);
    }
    const dry = await p.run(["gc", "--keep-runs", "2", "--dry-run"]);
    assertMatch(dry.stdout, /would free .* in 31 objects/);
    const gc = await p.run(["gc", "--keep-runs", "2", "--json"]);
    const result = JSON.parse(gc.stdout);
    // offset=1000's 30 values and its total report are reachable from no kept run.
    assertEquals(result.objectsDeleted, 31);
    assertEquals((await p.run(["verify"])).code, 0);
    await p.writeConfig({ count: 30, offset: 2000 });
    const kept = await p.run(["run", "--json"]);
    assertEquals(ToyProject.ran(kept).get("offset"), 0, "offset=2000 belongs to a kept run");
    assertStringIncludes(await Deno.readTextFile(p.out), "5 2025\n");
    await p.writeConfig({ count: 30, offset: 1000 });
    const gone = await p.run(["run", "--json"]);
    assertEquals(ToyProject.ran(gone).get("offset"), 30, "offset=1000 was collected");
    assertStringIncludes(await Deno.readTextFile(p.out), "5 1025\n");
  } finally {
    await p.cleanup();
  }
});

Deno.test("verify quarantines a corrupt object and the next run recomputes it", async () => {
  const p = await ToyProject.create({ count: 10 });
  try {
    assertEquals((await p.run(["run"])).code, 0);
    const objects = `${p.cache}/objects`;
    let victim = "";
    for await (const shard of Deno.readDir(objects)) {
      for await (const f of Deno.readDir(`${objects}/${shard.name}`)) {
        const text = await Deno.readTextFile(`${objects}/${shard.name}/${f.name}`);
        if (text === "49") victim = `${objects}/${shard.name}/${f.name}`;
      }
    }
    assert(victim, "the object holding 49 (square of 7) exists");
    await Deno.writeTextFile(victim, "48");
    const verify = await p.run(["verify"]);
    assertEquals(verify.code, 1);
    assertStringIncludes(verify.stdout, "corrupt: ");
    assertStringIncludes(verify.stdout, "records invalidated");
    const rerun = await p.run(["run", "--json"]);
    assertEquals(rerun.code, 0);
    assertEquals(ToyProject.ran(rerun).get("square"), 1);
    assertStringIncludes(await Deno.readTextFile(p.out), "7 49\n");
    assertEquals((await p.run(["verify"])).code, 0);
  } finally {
    await p.cleanup();
  }
});

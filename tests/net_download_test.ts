import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import { downloadVerified } from "../lib/net/download.ts";
import { DownloadError } from "../lib/net/download_error.ts";
import { HashPool } from "../lib/net/hash_pool.ts";
import { HostGate, hostOf } from "../lib/net/host_gate.ts";
import { retry } from "../lib/base/retry.ts";
import { ALL_FAULTS, type Mirror, startMirror } from "./fixtures/mirror.ts";
import { Running } from "./fixtures/running.ts";

interface Entry {
  id: string;
  path: string;
  url: string;
  size: number;
  md5: string;
}

function entries(mirror: Mirror): Entry[] {
  const spec = JSON.parse(new TextDecoder().decode(mirror.specBytes));
  return Object.entries(spec).map(([id, rec]) => {
    const image = (rec as { image: Record<string, unknown> }).image;
    return {
      id,
      path: image.file_path as string,
      url: image.file_url as string,
      size: image.file_size as number,
      md5: image.file_md5 as string,
    };
  });
}

async function md5OfFile(path: string): Promise<string> {
  return createHash("md5").update(await Deno.readFile(path)).digest("hex");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("1,000 items with 20% of requests faulted: all complete, no wrong MD5 accepted, a 404 is reported", async () => {
  const mirror = await startMirror({
    count: 1000,
    imageSize: 48,
    imageKind: "noise",
    faults: { rate: 0.2 },
    seed: 3,
    alwaysFail404Ids: [417],
  });
  const dir = await Deno.makeTempDir({ prefix: "lf_dl_" });
  try {
    const gate = new HostGate({ perHost: 16, quotaBackoffS: 0.05 });
    // Half of the items hash in worker threads, half on the main thread.
    const hashPool = new HashPool({ workers: 2 });
    const items = entries(mirror);
    const done = new Map<string, string>();
    const failed = new Map<string, DownloadError>();
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const item = items[next++];
        try {
          const got = await retry(
            () =>
              downloadVerified({
                urls: [item.url],
                partialPath: `${dir}/partial/${item.id}.part`,
                expectedSize: item.size,
                expectedMd5: item.md5,
                stallMs: 250,
                hostGate: gate,
                fsync: false,
                hashPool: Number(item.id) % 2 === 0 ? hashPool : undefined,
              }),
            {
              attempts: 15,
              baseMs: 5,
              maxMs: 100,
              countsAsAttempt: (e) => (e as DownloadError).kind !== "quota",
            },
          );
          const target = `${dir}/store/${item.id}.png`;
          await Deno.mkdir(`${dir}/store`, { recursive: true });
          await Deno.rename(got.path, target);
          const bytes = await Deno.readFile(target);
          strictEqual(got.sha256, createHash("sha256").update(bytes).digest("hex"));
          done.set(item.id, target);
        } catch (error) {
          if (!(error instanceof DownloadError)) throw error;
          failed.set(item.id, error);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: 32 }, worker));
    } finally {
      hashPool.close();
    }

    strictEqual(done.size, 999);
    deepStrictEqual([...failed.keys()], ["417"]);
    const reason = failed.get("417")!;
    strictEqual(reason.kind, "not_found");
    strictEqual(reason.retryable, false);
    ok(reason.message.includes("images1024x1024/00000/00417.png"), reason.message);
    ok(reason.message.includes("404"), reason.message);
    for (const kind of ALL_FAULTS) ok(mirror.stats.faults[kind] > 0, `no ${kind} fault injected`);
    const injected = Object.values(mirror.stats.faults).reduce((a, b) => a + b, 0);
    ok(injected > 150, `only ${injected} faults injected`);
    ok(mirror.stats.faults.wrong_bytes > 0);
    const byId = new Map(items.map((i) => [i.id, i]));
    for (const [id, path] of done) {
      strictEqual(await md5OfFile(path), byId.get(id)!.md5, `item ${id} stored with a wrong MD5`);
      strictEqual((await Deno.stat(path)).size, byId.get(id)!.size);
    }
  } finally {
    await mirror.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an aborted download resumes with Range and fetches only the rest", async () => {
  const mirror = await startMirror({
    count: 1,
    imageSize: 256,
    imageKind: "noise",
    throttleBytesPerSec: 400_000,
  });
  const dir = await Deno.makeTempDir({ prefix: "lf_dl_" });
  try {
    const [item] = entries(mirror);
    const partialPath = `${dir}/p/0.part`;
    const controller = new AbortController();
    let received = 0;
    await rejects(
      downloadVerified({
        urls: [item.url],
        partialPath,
        expectedSize: item.size,
        expectedMd5: item.md5,
        stallMs: 5000,
        signal: controller.signal,
        onBytes: (n) => {
          received += n;
          if (received > 60_000) controller.abort(new Error("stop here"));
        },
      }),
      /stop here/,
    );
    const kept = (await Deno.stat(partialPath)).size;
    ok(kept > 60_000 && kept < item.size, `partial holds ${kept} of ${item.size} bytes`);
    mirror.resetStats();
    const hashPool = new HashPool();
    const got = await downloadVerified({
      urls: [item.url],
      partialPath,
      expectedSize: item.size,
      expectedMd5: item.md5,
      stallMs: 5000,
      hashPool,
    }).finally(() => hashPool.close());
    strictEqual(got.md5, item.md5);
    strictEqual(await md5OfFile(got.path), item.md5);
    strictEqual(
      got.sha256,
      createHash("sha256").update(mirror.files.get(item.path)!.bytes).digest("hex"),
    );
    strictEqual(got.bytesFetched, item.size - kept);
    strictEqual(mirror.stats.rangeRequests, 1);
    strictEqual(mirror.stats.bytesByPath.get(item.path), item.size - kept);
  } finally {
    await mirror.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kill -9 of a downloading process, then a rerun serves fewer bytes than the file", async () => {
  const mirror = await startMirror({
    count: 1,
    imageSize: 512,
    imageKind: "noise",
    throttleBytesPerSec: 500_000,
  });
  const dir = await Deno.makeTempDir({ prefix: "lf_dl_" });
  try {
    const [item] = entries(mirror);
    const partialPath = `${dir}/p/0.part`;
    const script = `${dir}/child.ts`;
    const lib = new URL("../lib/net/download.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { downloadVerified } from ${JSON.stringify(lib)};
await downloadVerified({ urls: [${JSON.stringify(item.url)}], partialPath: ${
        JSON.stringify(partialPath)
      }, expectedSize: ${item.size}, expectedMd5: ${JSON.stringify(item.md5)}, stallMs: 5000 });
console.log("finished");`,
    );
    const child = new Running(
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-config", script],
        stdout: "piped",
        stderr: "piped",
      }),
    );
    // Killed the moment its first block of bytes is in the partial file.
    await child.waitForState(
      "bytes in the partial file",
      async () => (await Deno.stat(partialPath).catch(() => null))?.size! > 0,
    );
    child.kill("SIGKILL");
    strictEqual((await child.finish()).signal, "SIGKILL");
    const kept = (await Deno.stat(partialPath)).size;
    ok(kept > 0 && kept < item.size, `partial holds ${kept} of ${item.size} bytes`);

    mirror.resetStats();
    const got = await downloadVerified({
      urls: [item.url],
      partialPath,
      expectedSize: item.size,
      expectedMd5: item.md5,
      stallMs: 5000,
    });
    strictEqual(await md5OfFile(got.path), item.md5);
    const rerun = mirror.stats.bytesByPath.get(item.path)!;
    ok(rerun < item.size, `rerun served ${rerun} bytes of ${item.size}`);
    strictEqual(rerun, item.size - kept);
    strictEqual(mirror.stats.rangeRequests, 1);
  } finally {
    await mirror.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a host answering 'Quota exceeded' is backed off while another mirror serves", async () => {
  const refusing = await startMirror({
    count: 40,
    imageKind: "noise",
    imageSize: 32,
    faults: { rate: 1, kinds: ["quota"] },
  });
  const good = await startMirror({ count: 40, imageKind: "noise", imageSize: 32 });
  const dir = await Deno.makeTempDir({ prefix: "lf_dl_" });
  try {
    const gate = new HostGate({ perHost: 4, quotaBackoffS: 60 });
    const items = entries(good);
    const results = await Promise.all(items.map((item) =>
      retry(
        () =>
          downloadVerified({
            urls: [`${refusing.origin}/${item.path}`, `${good.origin}/${item.path}`],
            partialPath: `${dir}/${item.id}.part`,
            expectedSize: item.size,
            expectedMd5: item.md5,
            stallMs: 2000,
            hostGate: gate,
          }),
        { attempts: 3, baseMs: 5 },
      )
    ));
    for (const [i, got] of results.entries()) {
      strictEqual(got.md5, items[i].md5);
      strictEqual(got.url, `${good.origin}/${items[i].path}`);
    }
    const asked = [...refusing.stats.requests.values()].reduce((a, b) => a + b, 0);
    ok(asked >= 1 && asked <= 4, `the refusing host was asked ${asked} times`);
    ok(gate.backoffRemainingMs(hostOf(refusing.origin)) > 55_000);
    strictEqual(gate.backoffRemainingMs(hostOf(good.origin)), 0);
  } finally {
    await refusing.close();
    await good.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A clock that moves only when told to, for a {@link HostGate}'s `now` and `sleep`: sleepers
 * wake when {@link ManualClock.advance} passes their time.
 */
class ManualClock {
  #ms = 0;
  #sleepers: { until: number; wake: () => void }[] = [];
  #onSleep: ((ms: number) => void)[] = [];
  readonly now = (): number => this.#ms;
  readonly sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const sleeper = { until: this.#ms + ms, wake: resolve };
      this.#sleepers.push(sleeper);
      signal?.addEventListener("abort", () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
        reject(signal.reason);
      }, { once: true });
      this.#onSleep.shift()?.(ms);
    });
  /** Resolves with the length of the next sleep that begins. */
  nextSleep(): Promise<number> {
    return new Promise((resolve) => this.#onSleep.push(resolve));
  }
  advance(ms: number): void {
    this.#ms += ms;
    const due = this.#sleepers.filter((s) => s.until <= this.#ms);
    this.#sleepers = this.#sleepers.filter((s) => s.until > this.#ms);
    for (const s of due) s.wake();
  }
}

Deno.test("callers of a backed-off host wait while another host's downloads go on", async () => {
  const refusing = await startMirror({
    count: 1,
    imageKind: "noise",
    imageSize: 32,
    faults: { rate: 1, kinds: ["http_429"] },
  });
  const good = await startMirror({ count: 5, imageKind: "noise", imageSize: 32 });
  const dir = await Deno.makeTempDir({ prefix: "lf_dl_" });
  const controller = new AbortController();
  let waiting: Promise<unknown> | undefined;
  try {
    const clock = new ManualClock();
    const gate = new HostGate({ quotaBackoffS: 1, now: clock.now, sleep: clock.sleep });
    const [stuck] = entries(refusing);
    const errors: string[] = [];
    let sleep = clock.nextSleep();
    waiting = retry(
      () =>
        downloadVerified({
          urls: [stuck.url],
          partialPath: `${dir}/stuck.part`,
          expectedSize: stuck.size,
          expectedMd5: stuck.md5,
          stallMs: 2000,
          hostGate: gate,
          signal: controller.signal,
        }),
      {
        attempts: 2,
        baseMs: 1,
        random: () => 0,
        signal: controller.signal,
        countsAsAttempt: (e) => (e as DownloadError).kind !== "quota",
        onRetry: (e) => errors.push((e as Error).message),
      },
    );
    waiting.catch(() => {});
    // Refused once: its caller now sleeps out a 1 s back-off.
    strictEqual(await sleep, 1000);
    strictEqual(refusing.stats.requests.get(stuck.path), 1);
    ok(errors[0].includes("HTTP 429") && errors[0].includes("backed off for 1 s"), errors[0]);
    // The clock stands still, yet every download from the other host goes through the gate.
    for (const item of entries(good)) {
      const got = await downloadVerified({
        urls: [item.url],
        partialPath: `${dir}/${item.id}.part`,
        expectedSize: item.size,
        expectedMd5: item.md5,
        hostGate: gate,
      });
      strictEqual(got.md5, item.md5);
    }
    strictEqual(gate.backoffRemainingMs(hostOf(good.origin)), 0);
    strictEqual(refusing.stats.requests.get(stuck.path), 1, "asked again during its back-off");
    // After 1 s it is asked again, refused again, and the back-off doubles: not hammered.
    sleep = clock.nextSleep();
    clock.advance(1000);
    strictEqual(await sleep, 2000);
    strictEqual(refusing.stats.requests.get(stuck.path), 2);
    controller.abort(new Error("run stopped"));
    await rejects(waiting, /run stopped/);
    strictEqual(refusing.stats.requests.get(stuck.path), 2);
  } finally {
    controller.abort(new Error("test over"));
    await waiting?.catch(() => {});
    await refusing.close();
    await good.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Google-Drive-like host: the confirm page is followed and the file verified", async () => {
  const mirror = await startMirror({
    count: 3,
    imageKind: "noise",
    imageSize: 32,
    driveMode: true,
  });
  const dir = await Deno.makeTempDir({ prefix: "lf_dl_" });
  try {
    for (const item of entries(mirror)) {
      ok(item.url.includes("/uc?id="), item.url);
      const got = await downloadVerified({
        urls: [item.url],
        partialPath: `${dir}/${item.id}.part`,
        expectedSize: item.size,
        expectedMd5: item.md5,
      });
      strictEqual(await md5OfFile(got.path), item.md5);
      strictEqual(mirror.stats.requests.get(`uc?id=lfi${item.id}`), 2);
    }
  } finally {
    await mirror.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HTML where an image was expected is never accepted, even without an MD5", async () => {
  const page = "<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>";
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) =>
      new URL(req.url).pathname === "/typed"
        ? new Response(page, { headers: { "content-type": "text/html" } })
        : new Response(page, { headers: { "content-type": "application/octet-stream" } }),
  );
  const dir = await Deno.makeTempDir({ prefix: "lf_dl_" });
  try {
    for (const path of ["typed", "untyped"]) {
      const url = `http://127.0.0.1:${server.addr.port}/${path}`;
      const error = await downloadVerified({ urls: [url], partialPath: `${dir}/${path}.part` })
        .then(() => null, (e) => e);
      ok(error instanceof DownloadError, String(error));
      strictEqual(error.kind, "html");
      ok(error.message.includes(url), error.message);
      ok(!(await exists(`${dir}/${path}.part`)), "the HTML page was left as a partial file");
    }
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("wrong MD5, wrong size and an over-long partial are rejected and discarded", async () => {
  const mirror = await startMirror({ count: 1, imageKind: "noise", imageSize: 32 });
  const dir = await Deno.makeTempDir({ prefix: "lf_dl_" });
  try {
    const [item] = entries(mirror);
    const partialPath = `${dir}/0.part`;
    const wrong = "0".repeat(32);
    const e1 = await downloadVerified({ urls: [item.url], partialPath, expectedMd5: wrong })
      .then(() => null, (e) => e);
    strictEqual(e1?.kind, "md5");
    ok(e1.message.includes(`expected MD5 ${wrong}, found ${item.md5}`), e1.message);
    ok(!(await exists(partialPath)));

    const e2 = await downloadVerified({
      urls: [item.url],
      partialPath,
      expectedSize: item.size + 1,
    })
      .then(() => null, (e) => e);
    strictEqual(e2?.kind, "size");
    ok(e2.message.includes(`expected ${item.size + 1}`), e2.message);

    await Deno.writeFile(partialPath, new Uint8Array(item.size + 10));
    const got = await downloadVerified({
      urls: [item.url],
      partialPath,
      expectedSize: item.size,
      expectedMd5: item.md5,
    });
    strictEqual(got.bytesFetched, item.size);
    strictEqual(await md5OfFile(partialPath), item.md5);

    // A partial of the right length but wrong content: rehashed, found wrong, fetched again.
    await Deno.writeFile(partialPath, new Uint8Array(item.size));
    const again = await downloadVerified({
      urls: [item.url],
      partialPath,
      expectedSize: item.size,
      expectedMd5: item.md5,
    });
    strictEqual(again.md5, item.md5);
    strictEqual(again.bytesFetched, item.size);
    // Already complete and correct: nothing is fetched.
    mirror.resetStats();
    const kept = await downloadVerified({
      urls: [item.url],
      partialPath,
      expectedSize: item.size,
      expectedMd5: item.md5,
    });
    strictEqual(kept.bytesFetched, 0);
    strictEqual(mirror.stats.bytesServed, 0);
  } finally {
    await mirror.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("URLs that are not http(s) fail at once, naming the URL", async () => {
  for (const url of ["file:///etc/passwd", "ftp://example.org/x.png", "not a url"]) {
    const error = await downloadVerified({ urls: [url], partialPath: "/tmp/never.part" })
      .then(() => null, (e) => e);
    ok(error instanceof DownloadError);
    strictEqual(error.kind, "bad_url");
    strictEqual(error.retryable, false);
    ok(error.message.includes(JSON.stringify(url)), error.message);
  }
});

Deno.test("a stalled body is aborted after stallMs and the retry resumes from the partial", async () => {
  // Two servers of the same file: the first stalls every body half-way, the second does not.
  const stalling = await startMirror({
    count: 1,
    imageKind: "noise",
    imageSize: 64,
    faults: { rate: 1, kinds: ["stall"] },
  });
  const healthy = await startMirror({ count: 1, imageKind: "noise", imageSize: 64 });
  const dir = await Deno.makeTempDir({ prefix: "lf_dl_" });
  try {
    const [item] = entries(stalling);
    strictEqual(entries(healthy)[0].md5, item.md5);
    const half = Math.floor(item.size / 2);
    const partialPath = `${dir}/0.part`;
    const failures: DownloadError[] = [];
    const got = await retry(
      (attempt) =>
        downloadVerified({
          urls: [attempt === 1 ? item.url : `${healthy.origin}/${item.path}`],
          partialPath,
          expectedSize: item.size,
          expectedMd5: item.md5,
          stallMs: 200,
        }),
      {
        attempts: 2,
        baseMs: 1,
        random: () => 0,
        onRetry: (e) => failures.push(e as DownloadError),
      },
    );
    strictEqual(failures.length, 1);
    strictEqual(failures[0].kind, "stall");
    strictEqual(failures[0].retryable, true);
    strictEqual(
      failures[0].message,
      `${item.url}: no byte received for 200 ms (after ${half} bytes); partial kept`,
    );
    // The retry asked the second server for the bytes from the partial's end, and only those.
    strictEqual(healthy.stats.rangeRequests, 1);
    strictEqual(healthy.stats.bytesByPath.get(item.path), item.size - half);
    strictEqual(got.bytesFetched, item.size - half);
    strictEqual(got.md5, item.md5);
    strictEqual(await md5OfFile(got.path), item.md5);
  } finally {
    await stalling.close();
    await healthy.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("older Drive pages: an export=download link or a bare confirm token is followed", async () => {
  const file = new TextEncoder().encode("\x89PNG fake image bytes for the confirm flow");
  const md5 = createHash("md5").update(file).digest("hex");
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    if (url.searchParams.get("confirm") === "AbC1") {
      return new Response(file, { headers: { "content-type": "application/octet-stream" } });
    }
    const page = url.pathname === "/link"
      ? `<html><body><a id="uc-download-link" href="/link?export=download&amp;confirm=AbC1&amp;id=X">Download anyway</a></body></html>`
      : `<html><body><p>Large file. <span>confirm=AbC1</span></p></body></html>`;
    return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
  });
  const dir = await Deno.makeTempDir({ prefix: "lf_dl_" });
  try {
    for (const path of ["link", "token"]) {
      const got = await downloadVerified({
        urls: [`http://127.0.0.1:${server.addr.port}/${path}?id=X`],
        partialPath: `${dir}/${path}.part`,
        expectedSize: file.length,
        expectedMd5: md5,
      });
      strictEqual(got.md5, md5);
      deepStrictEqual(await Deno.readFile(got.path), file);
    }
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A spec pinned by size and MD5 is the file whatever it looks like: served as an HTML "Quota
 * exceeded" page whose bytes match the pin, it is taken at once, and fetch-json fails at once
 * saying it is not JSON, with the file and its first bytes — no quota back-off, no retry.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "./fixtures/assert.ts";
import { downloadVerified } from "../lib/net/download.ts";
import { HostGate } from "../lib/net/host_gate.ts";
import { PipelineProject } from "./fixtures/pipeline_project.ts";

const PAGE = new TextEncoder().encode(
  "<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>" +
    "<p>Too many users have viewed or downloaded this file recently.</p></body></html>",
);
const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

/** A server answering every request with the quota page, with or without its length. */
function serve(chunked: boolean) {
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    requests++;
    const body = chunked ? new Blob([PAGE]).stream() : PAGE;
    return new Response(body, { headers: { "content-type": "text/html; charset=utf-8" } });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/uc?id=spec`,
    requests: () => requests,
    close: () => server.shutdown(),
  };
}

Deno.test("a download matching its pinned size and MD5 is the file, even one that looks like a quota page", async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-pinned-" });
  try {
    for (const chunked of [false, true]) {
      const server = serve(chunked);
      try {
        const gate = new HostGate({ quotaBackoffS: 600 });
        const got = await downloadVerified({
          urls: [server.url],
          partialPath: join(dir, `spec-${chunked}.part`),
          expectedSize: PAGE.length,
          expectedMd5: md5(PAGE),
          hostGate: gate,
        });
        assertEquals(await Deno.readFile(got.path), PAGE);
        assertEquals(server.requests(), 1);
        assertEquals(gate.backoffRemainingMs(new URL(server.url).host), 0, "no back-off");
        // Without a pin it is what it looks like: a quota refusal, and the host is backed off.
        const refused = await downloadVerified({
          urls: [server.url],
          partialPath: join(dir, `unpinned-${chunked}.part`),
          hostGate: gate,
        }).catch((e) => e);
        assertEquals(refused.kind, "quota", String(refused));
        assert(gate.backoffRemainingMs(new URL(server.url).host) > 0);
      } finally {
        await server.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a pinned spec that is an HTML page fails fetch-json at once: not JSON, with its first bytes", async () => {
  const server = serve(false);
  const p = await PipelineProject.create({
    dataset: { kind: "ffhq", spec: { url: server.url, size: PAGE.length, md5: md5(PAGE) } },
    download: { quota_backoff_s: 600 },
    model: {
      encoder: { path: "unused.onnx" },
      decoder: { path: "unused.onnx" },
      scaling_factor: 1,
    },
  });
  try {
    const started = performance.now();
    const r = await p.run(["run", "fetch-json", "--json"]);
    const seconds = (performance.now() - started) / 1000;
    assertEquals(r.code, 1, r.stderr);
    const end = r.events.find((e) => e.event === "task-end" && e.task === "fetch-json")!;
    assertEquals(end.status, "failed");
    assertStringIncludes(
      String(end.reason),
      `dataset.spec ${server.url} is not JSON: it starts with ${
        JSON.stringify(new TextDecoder().decode(PAGE).slice(0, 80))
      } (an HTML page)`,
    );
    // Fetched once and failed: nothing retried, nothing waited for.
    assertEquals(server.requests(), 1);
    assertEquals(r.events.filter((e) => e.event === "retry").length, 0);
    assert(seconds < 60, `took ${seconds} s`);
  } finally {
    await server.close();
    await p.cleanup();
  }
});

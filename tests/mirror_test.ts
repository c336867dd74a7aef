import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { createHash } from "node:crypto";
import sharp from "sharp";
import { ffhqFilePath, LABELS_HEADER } from "./fixtures/ffhq_source_text.ts";
import { type Mirror, startMirror } from "./fixtures/mirror.ts";

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

Deno.test("the mirror serves a spec of the real schema whose files match their MD5s", async () => {
  const mirror = await startMirror({ count: 8, imageSize: 32, thumbnailSize: 8, wildWidth: 40 });
  try {
    const spec = await (await fetch(mirror.specUrl)).json();
    deepStrictEqual(Object.keys(spec), ["0", "1", "2", "3", "4", "5", "6", "7"]);
    const rec = spec["6"];
    deepStrictEqual(Object.keys(rec), [
      "category",
      "metadata",
      "image",
      "thumbnail",
      "in_the_wild",
    ]);
    deepStrictEqual(Object.keys(rec.metadata), [
      "photo_url",
      "photo_title",
      "author",
      "country",
      "license",
      "license_url",
      "date_uploaded",
      "date_crawled",
    ]);
    deepStrictEqual(Object.keys(rec.image), [
      "file_url",
      "file_path",
      "file_size",
      "file_md5",
      "pixel_size",
      "pixel_md5",
      "face_landmarks",
    ]);
    deepStrictEqual(Object.keys(rec.thumbnail), [
      "file_url",
      "file_path",
      "file_size",
      "file_md5",
      "pixel_size",
      "pixel_md5",
    ]);
    deepStrictEqual(Object.keys(rec.in_the_wild), [
      "file_url",
      "file_path",
      "file_size",
      "file_md5",
      "pixel_size",
      "pixel_md5",
      "face_rect",
      "face_landmarks",
      "face_quad",
    ]);
    strictEqual(rec.image.face_landmarks.length, 68);
    strictEqual(rec.image.file_path, "images1024x1024/00000/00006.png");
    strictEqual(ffhqFilePath("images1024x1024", 1234), "images1024x1024/01000/01234.png");
    strictEqual(spec["0"].category, "training");
    strictEqual(spec["7"].category, "validation");
    for (const part of ["image", "thumbnail", "in_the_wild"]) {
      const p = rec[part];
      const bytes = new Uint8Array(await (await fetch(p.file_url)).arrayBuffer());
      strictEqual(bytes.length, p.file_size);
      strictEqual(md5(bytes), p.file_md5);
      const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
      deepStrictEqual([info.width, info.height, info.channels], [...p.pixel_size, 3]);
      strictEqual(md5(data), p.pixel_md5);
    }
    const csv = await (await fetch(mirror.labelsUrl)).text();
    const lines = csv.trimEnd().split("\n");
    strictEqual(lines[0], LABELS_HEADER);
    strictEqual(lines.length, 9);
    ok(lines[7].startsWith("6,"));
    strictEqual(mirror.stats.requests.get(rec.image.file_path), 1);
    strictEqual(mirror.stats.bytesByPath.get(rec.image.file_path), rec.image.file_size);
  } finally {
    await mirror.close();
  }
});

Deno.test("the mirror answers Range requests with 206 and 416", async () => {
  const mirror = await startMirror({ count: 1, imageKind: "noise", imageSize: 32 });
  try {
    const file = mirror.files.get("images1024x1024/00000/00000.png")!;
    const url = `${mirror.origin}/images1024x1024/00000/00000.png`;
    const part = await fetch(url, { headers: { range: "bytes=100-" } });
    strictEqual(part.status, 206);
    strictEqual(
      part.headers.get("content-range"),
      `bytes 100-${file.bytes.length - 1}/${file.bytes.length}`,
    );
    deepStrictEqual(new Uint8Array(await part.arrayBuffer()), file.bytes.subarray(100));
    const past = await fetch(url, { headers: { range: `bytes=${file.bytes.length}-` } });
    strictEqual(past.status, 416);
    strictEqual(past.headers.get("content-range"), `bytes */${file.bytes.length}`);
    await past.body?.cancel();
    strictEqual(mirror.stats.rangeRequests, 2);
    strictEqual(mirror.stats.bytesServed, file.bytes.length - 100);
  } finally {
    await mirror.close();
  }
});

Deno.test("every fault kind looks on the wire the way the real failure does", async () => {
  const get = async (kind: string) => {
    const mirror = await startMirror({
      count: 1,
      imageKind: "noise",
      imageSize: 64,
      faults: { rate: 1, kinds: [kind as "quota"] },
    });
    const file = mirror.files.get("images1024x1024/00000/00000.png")!;
    const controller = new AbortController();
    try {
      const res = await fetch(`${mirror.origin}/images1024x1024/00000/00000.png`, {
        signal: controller.signal,
      });
      if (kind === "stall") return { res, body: await stalledBody(res, mirror, controller), file };
      const body = await res.arrayBuffer().then(
        (b) => new Uint8Array(b),
        (e: Error) => e,
      );
      return { res, body, file };
    } finally {
      await mirror.close();
    }
  };
  // A stalled answer sends half the file and then nothing more: once the mirror says it has
  // stalled, no further byte is queued, so a read only ends by the client giving up.
  const stalledBody = async (res: Response, mirror: Mirror, controller: AbortController) => {
    await mirror.firstStall();
    const reader = res.body!.getReader();
    let got = 0;
    while (got < mirror.stats.bytesServed) {
      const step = await reader.read();
      if (step.done) return new Uint8Array(got);
      got += step.value.length;
    }
    const next = reader.read();
    controller.abort(new Error(`no byte after ${got}`));
    return await next.then(() => new Uint8Array(got), (e: Error) => e);
  };
  const http500 = await get("http_500");
  strictEqual(http500.res.status, 500);
  strictEqual((await get("http_503")).res.status, 503);
  strictEqual((await get("http_429")).res.status, 429);
  const quota = await get("quota");
  strictEqual(quota.res.status, 200);
  ok(new TextDecoder().decode(quota.body as Uint8Array).includes("Google Drive - Quota exceeded"));
  const inter = await get("interstitial");
  ok(new TextDecoder().decode(inter.body as Uint8Array).includes('name="confirm"'));
  const wrong = await get("wrong_bytes");
  strictEqual((wrong.body as Uint8Array).length, wrong.file.bytes.length);
  ok(md5(wrong.body as Uint8Array) !== wrong.file.md5);
  const truncated = await get("truncated");
  strictEqual((truncated.body as Uint8Array).length, Math.floor(truncated.file.bytes.length / 2));
  ok((await get("reset")).body instanceof Error);
  const stall = await get("stall");
  const half = Math.floor(stall.file.bytes.length / 2);
  ok(stall.body instanceof Error && stall.body.message.includes(`no byte after ${half}`));
});

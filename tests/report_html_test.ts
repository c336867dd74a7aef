import assert from "node:assert/strict";
import sharp from "sharp";
import { renderReport, type ReportData, type ReportImage } from "../lib/report/html.ts";
import { CHROMIUM_PATH, chromiumAvailable, withChromiumPage } from "./fixtures/chromium.ts";

/** Seeded PRNG: the same report every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
}

const PALETTE = ["#1d3557", "#457b9d", "#e63946", "#f4a261", "#2a9d8f", "#e9c46a", "#6a4c93"];

/** A 256×256 picture with structure a person recognizes (a face-like figure on a gradient). */
async function picture(k: number): Promise<Uint8Array> {
  const a = PALETTE[k % PALETTE.length];
  const b = PALETTE[(k + 3) % PALETTE.length];
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">
    <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="${a}"/>
    <stop offset="1" stop-color="${b}"/></linearGradient></defs>
    <rect width="256" height="256" fill="url(#g)"/>
    <circle cx="${118 + k * 3}" cy="128" r="78" fill="#f1dca7"/>
    <ellipse cx="${92 + k * 3}" cy="110" rx="11" ry="8" fill="#222"/>
    <ellipse cx="${144 + k * 3}" cy="110" rx="11" ry="8" fill="#222"/>
    <path d="M${84 + k * 3} 156 Q${118 + k * 3} ${176 + k * 2} ${152 + k * 3} 156" stroke="#9b2226"
      stroke-width="6" fill="none"/>
    <path d="M20 ${30 + k * 9} l60 -12 l50 20" stroke="#fff" stroke-width="3" fill="none"/></svg>`;
  return new Uint8Array(await sharp(new TextEncoder().encode(svg)).removeAlpha().png().toBuffer());
}

async function psnr(a: Uint8Array, b: Uint8Array): Promise<number> {
  const x = await sharp(a).raw().toBuffer();
  const y = await sharp(b).raw().toBuffer();
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += (x[i] - y[i]) ** 2;
  return 10 * Math.log10((255 * 255) / (sum / x.length));
}

/** A run of 64 images over three splits, with three failures and eight real sample triplets. */
async function realisticReport(): Promise<ReportData> {
  const rnd = random(42);
  const splits = [{ name: "train", count: 48 }, { name: "val", count: 8 }, {
    name: "test",
    count: 5,
  }];
  const images: ReportImage[] = [];
  for (const split of splits) {
    for (let i = 0; i < split.count; i++) {
      const id = String(images.length * 7 + 3).padStart(5, "0");
      const lossInitial = 0.02 * Math.exp(0.4 * gaussian(rnd));
      const rate = 0.01 + 0.02 * rnd();
      const floor = lossInitial * (0.15 + 0.2 * rnd());
      const steps = rnd() < 0.7 ? Math.round(120 + 260 * rnd()) : 500;
      const curve: Array<[number, number]> = [];
      for (let s = 0; s <= steps; s += 5) {
        const loss = floor + (lossInitial - floor) * Math.exp(-rate * s);
        curve.push([s, loss * (1 + 0.03 * gaussian(rnd))]);
      }
      const lossFinal = curve[curve.length - 1][1];
      const psnrInitial = 10 * Math.log10(4 / lossInitial);
      const psnrFinal = 10 * Math.log10(4 / lossFinal);
      const ssimInitial = Math.min(0.99, 0.72 + 0.05 * gaussian(rnd));
      images.push({
        id,
        split: split.name,
        psnrInitial,
        psnrFinal,
        ssimInitial,
        ssimFinal: Math.min(0.995, ssimInitial + 0.08 + 0.03 * rnd()),
        lossInitial,
        lossFinal,
        steps,
        stopReason: steps === 500 ? "max_steps" : "converged",
        lossCurve: curve,
      });
    }
  }
  const samples = [];
  for (let k = 0; k < 8; k++) {
    const original = await picture(k);
    const initial = new Uint8Array(
      await sharp(original).blur(2.6).modulate({ saturation: 0.8 }).png().toBuffer(),
    );
    const optimized = new Uint8Array(await sharp(original).blur(0.9).png().toBuffer());
    const image = images[k * 7];
    image.psnrInitial = await psnr(original, initial);
    image.psnrFinal = await psnr(original, optimized);
    samples.push({ id: image.id, original, initial, optimized });
  }
  return {
    title: "FFHQ-style mirror <demo>",
    toolVersion: "0.1.0",
    generatedAt: "2026-11-21T02:10:00.000Z",
    splits,
    images,
    failures: [
      {
        id: "00011",
        task: "preprocess",
        reason: "00011.png: cannot decode image: vipspng: libpng read error",
      },
      {
        id: "00040",
        task: "verify-sizes",
        reason: 'expected 1024×1024, found 512×512 <img src=x onerror="alert(1)">',
      },
      { id: "00057", task: "fetch-images", reason: "HTTP 404 from http://127.0.0.1:1/00057.png" },
    ],
    samples,
    config: {
      dataset: "ffhq",
      preprocess: { size: 256, crop: "center" },
      optimize: { lr: 0.1, loss: "l2", max_steps: 500, stop: { rel_change: 1e-4 } },
      note: "</pre><script>alert(1)</script>",
    },
    timings: [
      { task: "fetch-json", seconds: 0.04, ran: 1, cached: 0 },
      { task: "fetch-images", seconds: 3.2, ran: 64, cached: 0 },
      { task: "verify-sizes", seconds: 0.4, ran: 63, cached: 0 },
      { task: "label-split", seconds: 0.05, ran: 1, cached: 0 },
      { task: "preprocess", seconds: 1.8, ran: 62, cached: 0 },
      { task: "encode", seconds: 6.5, ran: 61, cached: 0 },
      { task: "optimize", seconds: 71.3, ran: 61, cached: 0 },
      { task: "package", seconds: 0.9, ran: 1, cached: 0 },
    ],
  };
}

Deno.test("renderReport escapes every text and embeds images as PNG data URIs only", async () => {
  const data = await realisticReport();
  const html = renderReport(data);
  assert.ok(html.startsWith("<!DOCTYPE html>"));
  assert.ok(!html.includes("<script"), "no script element, even from text in the data");
  assert.ok(!html.includes('<img src=x onerror="alert(1)">'));
  assert.ok(html.includes("512×512 &lt;img src=x onerror=&quot;alert(1)&quot;&gt;"));
  assert.ok(html.includes("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
  assert.ok(html.includes("<title>FFHQ-style mirror &lt;demo&gt;</title>"));
  // Self-contained: every src is a data URI, and nothing links to an external resource.
  const sources = [...html.matchAll(/\ssrc="([^"]*)"/g)].map((m) => m[1]);
  assert.equal(sources.length, 24);
  assert.ok(sources.every((s) => s.startsWith("data:image/png;base64,")));
  assert.ok(!/<link|@import|url\(http/i.test(html));
  const first = sources[0].slice("data:image/png;base64,".length);
  assert.deepEqual(Uint8Array.from(atob(first), (c) => c.charCodeAt(0)), data.samples[0].original);
  assert.equal((html.match(/<svg class="chart"/g) ?? []).length, 7);
});

Deno.test("renderReport draws placeholders, not broken charts, for a run where everything failed", () => {
  const html = renderReport({
    toolVersion: "0.1.0",
    generatedAt: "2026-11-21T00:00:00Z",
    splits: [],
    images: [],
    failures: [{ id: "00000", task: "fetch-images", reason: "connection refused" }],
    samples: [],
    config: {},
    timings: [],
  });
  assert.ok(html.includes("no finite values"));
  assert.ok(html.includes("no loss curves recorded"));
  assert.ok(!html.includes("NaN"));
  assert.ok(html.includes("connection refused"));
});

const noChromium = !chromiumAvailable();
if (noChromium) console.warn(`skipping the browser test of the report: ${CHROMIUM_PATH} is absent`);

Deno.test({
  name: "report loads in headless Chromium without errors, with sized charts and decoded images",
  ignore: noChromium,
  async fn() {
    const outDir = await Deno.makeTempDir({ prefix: "latentforge-report-" });
    try {
      await checkInChromium(outDir);
    } finally {
      await Deno.remove(outDir, { recursive: true });
    }
  },
});

/** Renders the realistic report into `outDir` and checks it as a browser shows it. */
async function checkInChromium(outDir: string): Promise<void> {
  const htmlPath = `${outDir}/report.html`;
  await Deno.writeTextFile(htmlPath, renderReport(await realisticReport()));

  const result = await withChromiumPage(`file://${htmlPath}`, async (page) => {
    const charts = await page.evaluate<Array<{ label: string; w: number; h: number }>>(
      `[...document.querySelectorAll("svg.chart")].map((s) => {
          const r = s.getBoundingClientRect();
          return { label: s.getAttribute("aria-label"), w: r.width, h: r.height };
        })`,
    );
    const images = await page.evaluate<Array<{ complete: boolean; w: number; h: number }>>(
      `Promise.all([...document.images].map((i) => i.decode().then(() =>
          ({ complete: i.complete, w: i.naturalWidth, h: i.naturalHeight }))))`,
    );
    const text = await page.evaluate<string>("document.body.innerText");
    const splitRows = await page.evaluate<string[][]>(
      `[...document.querySelectorAll("table.splits tr")].map((tr) =>
          [...tr.cells].slice(0, 2).map((c) => c.textContent.trim()))`,
    );
    const overflowWide = await page.evaluate<number>(
      "document.documentElement.scrollWidth - document.documentElement.clientWidth",
    );
    await page.screenshot(`${outDir}/report-1280.png`);
    await page.setViewport(420, 900);
    const overflowNarrow = await page.evaluate<number>(
      "document.documentElement.scrollWidth - document.documentElement.clientWidth",
    );
    await page.screenshot(`${outDir}/report-420.png`);
    return {
      charts,
      images,
      text,
      splitRows,
      overflowWide,
      overflowNarrow,
      errors: [...page.errors],
      requests: [...page.requests],
    };
  });

  assert.deepEqual(result.errors, [], "console errors and exceptions");
  const external = result.requests.filter((u) => !/^(file|data):/.test(u));
  assert.deepEqual(external, [], "the report must not touch the network");
  assert.equal(result.charts.length, 7);
  for (const c of result.charts) {
    assert.ok(c.w > 200 && c.h > 100, `chart "${c.label}" is ${c.w}×${c.h} px`);
  }
  assert.equal(result.images.length, 24, "eight triplets");
  for (const i of result.images) assert.deepEqual(i, { complete: true, w: 256, h: 256 });
  assert.ok(result.overflowWide <= 0, `page is ${result.overflowWide} px wider than 1280`);
  assert.ok(result.overflowNarrow <= 0, `page is ${result.overflowNarrow} px wider than 420`);
  assert.deepEqual(result.splitRows, [
    ["split", "images"],
    ["train", "48"],
    ["val", "8"],
    ["test", "5"],
    ["total", "61"],
  ]);
  for (const expected of ["Failures", "vipspng: libpng read error"]) {
    assert.ok(result.text.includes(expected), `page text lacks "${expected}"`);
  }
  assert.ok(result.text.includes('<img src=x onerror="alert(1)">'), "reason shown as text");
  const shot = await sharp(`${outDir}/report-1280.png`).metadata();
  assert.equal(shot.width, 1280);
  assert.ok(shot.height! > 2000, `full-page screenshot, found height ${shot.height}`);
}

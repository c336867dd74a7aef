import assert from "node:assert/strict";
import sharp from "sharp";
import { renderReport, type ReportData, type ReportImage } from "../lib/report/html.ts";
import type { RunFacts, TaskFacts } from "../lib/dag/run_facts.ts";
import {
  renderRunSection,
  RUN_SECTION_BEGIN,
  RUN_SECTION_END,
  RunSectionError,
  withoutRunSection,
  withRunSection,
} from "../lib/report/run_section.ts";
import { chromiumRequirement, withChromiumPage } from "./fixtures/chromium.ts";
import { testIf } from "./fixtures/skip.ts";
import { seededRandom } from "../lib/base/random.ts";

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

function task(
  task: string,
  start: number,
  wall: number,
  counts: { ran: number; cached: number; failed?: number },
  itemS: number | null,
): TaskFacts {
  const failed = counts.failed ?? 0;
  const total = counts.ran + counts.cached + failed;
  return {
    task,
    status: "ok",
    start_s: start,
    wall_s: wall,
    item_s: itemS,
    ran: counts.ran,
    cached: counts.cached,
    failed,
    total,
    items_per_s: itemS !== null && counts.ran > 0 ? counts.ran / wall : null,
    cache_hit: counts.ran === 0 && failed === 0 && counts.cached === total,
  };
}

/** A run where the images came from the cache and optimize ran (a new learning rate). */
function runFacts(built = "2026-11-21T02:31:07.250Z"): RunFacts {
  return {
    format: "latentforge.run-facts",
    version: 1,
    run: 1795640000000,
    started: "2026-11-21T02:10:00.000Z",
    built,
    seconds: 1267.25,
    tasks: [
      task("fetch-json", 0, 0.04, { ran: 0, cached: 1 }, null),
      task("fetch-images", 0.1, 0.2, { ran: 0, cached: 64 }, 0),
      task("verify-sizes", 0.1, 0.2, { ran: 0, cached: 63, failed: 1 }, 0),
      task("label-split", 0.4, 0.05, { ran: 0, cached: 1 }, null),
      task("preprocess", 0.5, 0.3, { ran: 0, cached: 62 }, 0),
      task("encode", 0.5, 0.4, { ran: 0, cached: 61 }, 0),
      task("optimize", 0.9, 1262.1, { ran: 61, cached: 0 }, 9744.3),
      { ...task("package", 1263, 4.2, { ran: 1, cached: 0 }, null), status: "running" },
    ],
  };
}

/** A run of 64 images over three splits, with three failures and eight real sample triplets. */
async function realisticReport(): Promise<ReportData> {
  const rnd = seededRandom(42);
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
    run: runFacts(),
    notes: {
      skipped: [{ path: "Thumbs.db", reason: "not an image by its extension (.db)" }],
      upscaled: [{ id: "00010", width: 60, height: 40, factor: 6.4 }],
      duplicates: [["00017", "00024"]],
      excluded: [],
    },
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
  assert.ok(
    html.includes("<title>FFHQ-style mirror &lt;demo&gt; · latentforge dataset report</title>"),
  );
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
    splits: [],
    images: [],
    failures: [{ id: "00000", task: "fetch-images", reason: "connection refused" }],
    samples: [],
    config: {},
  });
  assert.ok(html.includes("no finite values"));
  assert.ok(html.includes("no loss curves recorded"));
  assert.ok(!html.includes("NaN"));
  assert.ok(html.includes("connection refused"));
});

testIf(chromiumRequirement(), {
  name: "report loads in headless Chromium without errors, with sized charts and decoded images",
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
  for (
    const expected of [
      "Failures",
      "vipspng: libpng read error",
      "Built 2026-11-21 02:31:07 UTC",
      "21 min 7 s after it started",
      "Thumbs.db",
      "00017 = 00024",
    ]
  ) {
    assert.ok(result.text.includes(expected), `page text lacks "${expected}"`);
  }
  assert.ok(result.text.includes('<img src=x onerror="alert(1)">'), "reason shown as text");
  const shot = await sharp(`${outDir}/report-1280.png`).metadata();
  assert.equal(shot.width, 1280);
  assert.ok(shot.height! > 2000, `full-page screenshot, found height ${shot.height}`);
}

Deno.test("counts are written with the right number: 1 split, 1 image, 1 task", () => {
  const base = {
    toolVersion: "0.1.0",
    failures: [],
    samples: [],
    config: {},
  };
  const one: ReportImage = {
    id: "a",
    split: "all",
    psnrInitial: 20,
    psnrFinal: 22,
    ssimInitial: 0.6,
    ssimFinal: 0.7,
    lossInitial: 0.04,
    lossFinal: 0.025,
    steps: 12,
    stopReason: "converged",
    lossCurve: [[0, 0.04], [12, 0.025]],
  };
  const html = renderReport({
    ...base,
    splits: [{ name: "all", count: 1 }],
    images: [one],
    notes: {
      skipped: [{ path: "a.txt", reason: "not an image by its extension (.txt)" }],
      upscaled: [{ id: "a", width: 10, height: 10, factor: 25.6 }],
      duplicates: [],
      excluded: [],
    },
    run: {
      ...runFacts(),
      tasks: [
        task("optimize", 0, 2, { ran: 1, cached: 0 }, 2),
        task("encode", 0, 1, {
          ran: 0,
          cached: 1,
        }, 0),
      ],
    },
  });
  const text = html.replace(/<[^>]+>/g, " ").replace(/\s+/g, " ");
  assert.ok(text.includes("in 1 split"), "Images card: in 1 split");
  assert.ok(text.includes("1 file in the dataset folder was not read"), text);
  assert.ok(text.includes("1 image smaller than the preprocessed size"), text);
  assert.ok(text.includes("1 task did work in it; 1 task was served entirely from the cache"));
  assert.ok(!/\b1 (splits|images|files|tasks|groups)\b/.test(text), "a plural after 1");
  const two = renderReport({
    ...base,
    splits: [{ name: "a", count: 1 }, { name: "b", count: 1 }],
    images: [one, { ...one, id: "b", split: "b" }],
  });
  assert.ok(two.includes("in 2 splits"));
});

Deno.test("the steps histogram and every count axis have whole-number ticks", () => {
  // Steps 12…60 once gave bins 2.5 wide and a tick at 57.5.
  const images: ReportImage[] = Array.from({ length: 40 }, (_, k) => ({
    id: String(k),
    split: "all",
    psnrInitial: 20 + k / 10,
    psnrFinal: 21 + k / 10,
    ssimInitial: 0.6,
    ssimFinal: 0.7,
    lossInitial: 0.04,
    lossFinal: 0.03,
    steps: 12 + Math.round((48 * k) / 39),
    stopReason: "converged",
    lossCurve: [[0, 0.04], [10, 0.03]],
  }));
  const html = renderReport({
    toolVersion: "0.1.0",
    splits: [{ name: "all", count: 40 }],
    images,
    failures: [],
    samples: [],
    config: {},
  });
  const chart = (label: string) => {
    const start = html.indexOf(`aria-label="${label}"`);
    assert.ok(start > 0, `no chart "${label}"`);
    return html.slice(start, html.indexOf("</svg>", start));
  };
  const ticks = (svg: string) =>
    [...svg.matchAll(/<text class="tick"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
  const steps = ticks(chart("Steps per image"));
  assert.ok(steps.length > 4, `ticks ${steps}`);
  for (const t of steps) assert.match(t, /^\d+$/, `steps histogram tick "${t}"`);
  // Every bin of the steps histogram is a whole number of steps wide (its tooltip names the
  // steps it holds: `at 60`, `in 56–59`), and step 60 is counted.
  const bins = [
    ...chart("Steps per image").matchAll(/<title>images: (\d+) (?:at (\d+)|in (\d+)–(\d+))</g),
  ].map((m) => ({ n: Number(m[1]), lo: Number(m[2] ?? m[3]), hi: Number(m[2] ?? m[4]) }));
  assert.ok(bins.length > 0);
  assert.equal(bins.reduce((a, b) => a + b.n, 0), 40);
  assert.ok(bins.every((b) => b.lo <= b.hi), JSON.stringify(bins));
  assert.ok(bins.some((b) => b.lo <= 60 && 60 <= b.hi));
  // Few steps: the loss chart's step axis once had ticks at 0.5, 1.5, 2.5.
  const short = renderReport({
    toolVersion: "0.1.0",
    splits: [{ name: "all", count: 2 }],
    images: images.slice(0, 2).map((i) => ({ ...i, steps: 3, lossCurve: [[0, 0.04], [3, 0.03]] })),
    failures: [],
    samples: [],
    config: {},
  });
  const lossChart = short.slice(short.indexOf('aria-label="Loss over steps"'));
  const stepTicks = [
    ...lossChart.slice(0, lossChart.indexOf("</svg>")).matchAll(
      /<text class="tick"[^>]*text-anchor="middle">([^<]*)</g,
    ),
  ].map((m) => m[1]);
  assert.ok(stepTicks.length >= 2, `step ticks ${stepTicks}`);
  for (const t of stepTicks) assert.match(t, /^\d+$/, `loss chart step tick "${t}"`);
  // The count axis of a histogram is whole numbers too (a few images per bin gave 0.5 before).
  for (const label of ["PSNR before and after optimization", "Steps per image"]) {
    const counts = [
      ...chart(label).matchAll(/<text class="tick"[^>]*text-anchor="end"[^>]*>([^<]*)</g),
    ]
      .map((m) => m[1]);
    assert.ok(counts.length >= 2, `count ticks of "${label}": ${counts}`);
    for (const t of counts) assert.match(t, /^\d+$/, `count tick "${t}" of "${label}"`);
  }
});

Deno.test("the run section is delimited once, filled in at publish, and cut out for comparisons", () => {
  const data = {
    toolVersion: "0.1.0",
    splits: [],
    images: [],
    failures: [],
    samples: [],
    config: {},
  };
  const stored = renderReport(data);
  assert.equal(stored.split(RUN_SECTION_BEGIN).length, 2);
  assert.equal(stored.split(RUN_SECTION_END).length, 2);
  assert.ok(stored.includes("Not recorded"));
  assert.equal(withRunSection(stored, null), stored);
  const published = withRunSection(stored, runFacts());
  assert.equal(published, renderReport({ ...data, run: runFacts() }));
  assert.ok(published.includes('<time datetime="2026-11-21T02:31:07.250Z">'));
  const later = withRunSection(stored, runFacts("2026-12-01T08:00:00.000Z"));
  assert.notEqual(later, published);
  assert.equal(withoutRunSection(later), withoutRunSection(published));
  assert.equal(withoutRunSection(published), withoutRunSection(stored));
  // Everything outside the section is the stored report, byte for byte.
  const [head, rest] = published.split(RUN_SECTION_BEGIN);
  assert.ok(stored.startsWith(head));
  assert.ok(stored.endsWith(rest.split(RUN_SECTION_END)[1]));
  const rows = [...published.matchAll(/<tr data-task="([^"]+)" data-cache-hit="(\w+)">/g)];
  assert.deepEqual(rows.map((m) => [m[1], m[2]]), [
    ["fetch-json", "true"],
    ["fetch-images", "true"],
    ["verify-sizes", "false"],
    ["label-split", "true"],
    ["preprocess", "true"],
    ["encode", "true"],
    ["optimize", "false"],
    ["package", "false"],
  ]);
  assert.throws(() => withRunSection("<main></main>", null), RunSectionError);
  assert.throws(
    () => withoutRunSection(renderRunSection(null) + renderRunSection(null)),
    RunSectionError,
  );
});

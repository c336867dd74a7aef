/**
 * The report says what built it: the models by sha256 prefix with their preset and
 * normalization in the title area; the latentforge version, the --limit and the files the
 * config named in the run section; histogram tooltips with real ranges; why images stopped, in
 * words.
 */
import assert from "node:assert/strict";
import { renderReport, type ReportImage } from "../lib/report/html.ts";
import type { RunFacts } from "../lib/dag/run_facts.ts";
import { withRunSection } from "../lib/report/run_section.ts";

function images(count: number, steps: (k: number) => number): ReportImage[] {
  return Array.from({ length: count }, (_, k) => ({
    id: String(k),
    split: "all",
    // PSNR values a quarter of a dB apart: bins narrower than the axis's ticks.
    psnrInitial: 17 + k / 4,
    psnrFinal: 18 + k / 4,
    ssimInitial: 0.6,
    ssimFinal: 0.7,
    lossInitial: 0.04,
    lossFinal: 0.03,
    steps: steps(k),
    stopReason: steps(k) === 60 ? "max_steps" : "converged",
    lossCurve: [[0, 0.04], [10, 0.03]],
  }));
}

const MODELS = {
  encoder: "3f1c9a0b27de" + "0".repeat(52),
  decoder: "a4b5c6d7e8f9" + "1".repeat(52),
  preset: "flux1",
  normalization: { latent_channels: 16, scaling_factor: 0.3611, shift_factor: 0.1159 },
};

function report(list: ReportImage[], extra: object = {}) {
  return renderReport({
    title: "photos",
    toolVersion: "0.1.0",
    splits: [{ name: "all", count: list.length }],
    images: list,
    failures: [],
    samples: [],
    config: { optimize: { max_steps: 60 } },
    ...extra,
  });
}

Deno.test("the title area names the models by sha256 prefix, with their preset and normalization", () => {
  const html = report(images(8, () => 60), { models: MODELS });
  const header = html.slice(html.indexOf("<header>"), html.indexOf("</header>"));
  assert.match(
    header,
    /Made with encoder <code>3f1c9a0b27de<\/code> and decoder <code>a4b5c6d7e8f9<\/code> \(sha256\) · preset flux1 · 16 latent channels, stored = \(z − 0\.1159\) × 0\.3611/,
  );
  // No more of a digest than the prefix.
  assert.ok(!header.includes("3f1c9a0b27de0"));
  const unscaled = report(images(2, () => 60), {
    models: {
      ...MODELS,
      preset: null,
      normalization: { latent_channels: 4, scaling_factor: 1, shift_factor: 0 },
    },
  });
  assert.match(unscaled, /· no preset · 4 latent channels, stored = z<\/p><\/header>/);
});

Deno.test("histogram tooltips give each bin's real range", () => {
  const html = report(images(40, (k) => 12 + k));
  const tooltips = [
    ...html.matchAll(
      /<title>(encoder latent|optimized latent): (\d+) in \[([\d.]+), ([\d.]+)\)<\/title>/g,
    ),
  ];
  assert.ok(tooltips.length > 10, `${tooltips.length} tooltips`);
  for (const [, , , lo, hi] of tooltips) assert.ok(Number(lo) < Number(hi), `[${lo}, ${hi})`);
  // Bins narrower than the axis's ticks (whole dB) keep the decimals that tell them apart.
  assert.ok(
    tooltips.some(([, , , lo]) => /\.[1-9]/.test(lo)),
    tooltips.map((t) => t[0]).join("\n"),
  );
  assert.doesNotMatch(html, /in \[(\d+(?:\.\d+)?), \1\)/);
});

Deno.test("why images stopped reads plainly beside the median steps", () => {
  const html = report(
    images(8, (k) => (k < 5 ? 60 - k % 2 : 60)).map((i, k) => ({
      ...i,
      stopReason: k < 5 ? "converged" : "max_steps",
    })),
  );
  assert.match(
    html,
    /Median steps<\/div><div class="value">60<\/div><div class="note">5 stopped improving · 3 used all 60 steps \(max_steps\)<\/div>/,
  );
});

Deno.test("the run section states the version, the --limit and the files the config named", () => {
  const facts: RunFacts = {
    format: "latentforge.run-facts",
    version: 1,
    run: 1,
    started: "2026-11-21T02:10:00.000Z",
    built: "2026-11-21T02:20:00.000Z",
    seconds: 600,
    tasks: [],
    inputs: {
      "model.encoder": "../shared/models/vae-small-bsds/vae_encoder.onnx",
      "model.decoder": "../shared/models/vae-small-bsds/vae_decoder.onnx",
    },
  };
  const stored = report(images(2, () => 60));
  const limited = withRunSection(stored, { ...facts, made_with: { version: "0.1.0", limit: 8 } });
  assert.match(
    limited,
    /<p class="made">Made by latentforge 0\.1\.0 with <code>--limit 8<\/code> \(the first 8 items\), from model\.encoder <code>\.\.\/shared\/models\/vae-small-bsds\/vae_encoder\.onnx<\/code>, model\.decoder <code>\.\.\/shared\/models\/vae-small-bsds\/vae_decoder\.onnx<\/code>\.<\/p>/,
  );
  const whole = withRunSection(stored, { ...facts, made_with: { version: "0.1.0", limit: null } });
  assert.match(whole, /with no <code>--limit<\/code> \(every item\)/);
});

/**
 * The report's title area: the dataset's name, and what made its latents — the encoder and the
 * decoder by the first 12 hex digits of their sha256, the preset and the normalization the
 * latents are stored in. These are what the dataset's key holds (where the model files were is
 * the run section's to say), so two reports with the same title area describe latents made the
 * same way.
 *
 * @module
 */
import { escapeHtml } from "./escape.ts";

/** The models a dataset was made with, as its key holds them. */
export interface ReportModels {
  /** sha256 of the encoder and decoder files (null: an encode-only dataset named no decoder). */
  encoder: string;
  decoder: string | null;
  /** `model.preset`, or null without one. */
  preset: string | null;
  /** The stored normalization (LatentNormalization.describe()). */
  normalization: Record<string, number | number[] | string>;
}

/** Hex digits of a model's sha256 the report shows. */
export const DIGEST_PREFIX = 12;

/**
 * The `<header>` of the report.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const html = titleArea("BSDS500", "0.1.0", {
 *   encoder: "a".repeat(64), decoder: "b".repeat(64), preset: "sd15",
 *   normalization: { latent_channels: 4, scaling_factor: 0.18215, shift_factor: 0 },
 * });
 * assert.match(html, /encoder <code>aaaaaaaaaaaa<\/code>/);
 * assert.match(html, /preset sd15 · 4 latent channels, stored = z × 0\.18215/);
 * ```
 */
export function titleArea(title: string, version: string, models?: ReportModels): string {
  const made = models
    ? `<p class="models">Made with encoder <code>${
      escapeHtml(models.encoder.slice(0, DIGEST_PREFIX))
    }</code>${
      models.decoder === null
        ? " (sha256), no decoder"
        : ` and decoder <code>${escapeHtml(models.decoder.slice(0, DIGEST_PREFIX))}</code> (sha256)`
    } · ` +
      `${models.preset ? `preset ${escapeHtml(models.preset)}` : "no preset"} · ${
        escapeHtml(normalizationText(models.normalization))
      }</p>`
    : "";
  return `<header><h1>${
    escapeHtml(title)
  }</h1><p class="sub">A dataset of optimized Stable Diffusion VAE latents · latentforge ${
    escapeHtml(version)
  }</p>${made}</header>`;
}

/**
 * The normalization in one phrase: `4 latent channels, stored = (z − 0.1159) × 0.3611`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   normalizationText({ latent_channels: 16, scaling_factor: 0.3611, shift_factor: 0.1159 }),
 *   "16 latent channels, stored = (z − 0.1159) × 0.3611",
 * );
 * ```
 */
export function normalizationText(n: Record<string, number | number[] | string>): string {
  const scale = Number(n.scaling_factor);
  const shift = Number(n.shift_factor ?? 0);
  const channels = `${n.latent_channels} latent channels`;
  const perChannel = n.latents_mean !== undefined || n.latents_std !== undefined;
  const inner = perChannel ? "(z − latents_mean) / latents_std" : "z";
  const shifted = shift !== 0
    ? `(${inner} − ${shift})`
    : perChannel && scale !== 1
    ? `(${inner})`
    : inner;
  const stored = scale === 1 ? shifted : `${shifted} × ${scale}`;
  const means = perChannel ? " (latents_mean and latents_std per channel: manifest.json)" : "";
  return `${channels}, stored = ${stored}${means}`;
}

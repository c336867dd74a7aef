/**
 * What every dataset file says about its latents: how they relate to the VAE's z (the
 * normalization, with the channel count encode recorded), which models made them, and — in the
 * split files — the config they were written with. HDF5 files carry these as attributes,
 * safetensors as metadata, npz files (which have no attributes) as small arrays beside the
 * latents; shards carry only what changes a latent, so a setting that changes none keeps every
 * shard.
 *
 * @module
 */
import type { Hdf5Attribute } from "../format/hdf5.ts";
import { type NpzArray, npzValue } from "../format/npz.ts";
import { LatentNormalization, type NormalizationSettings } from "../model/normalization.ts";
import { type PresetName, PRESETS } from "../model/presets.ts";

/** The model settings the normalization of the stored latents comes from (`model`). */
export interface StoredModelSettings extends NormalizationSettings {
  preset?: PresetName;
}

/**
 * The normalization of the stored latents: the channel count is the one encode recorded (the
 * shape of its first latent; else the preset's, else the number of `latents_mean` values).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const normalization = storedNormalization({ scaling_factor: 0.18215 }, [1, 4, 32, 32]);
 * assert.equal(normalization.channels, 4);
 * assert.equal(normalization.describe().scaling_factor, 0.18215);
 * ```
 */
export function storedNormalization(
  model: StoredModelSettings,
  /** The shape encode recorded for a latent, when any latent was made. */
  shape: readonly number[] | undefined,
): LatentNormalization {
  const channels = shape?.[1] ??
    (model.preset ? PRESETS[model.preset].latentChannels : undefined) ??
    model.latents_mean?.length ?? 0;
  return LatentNormalization.of(channels, model);
}

/** The facts of {@link fileFacts}, in the forms `writeLayout` takes them. */
export interface FileFacts {
  /** HDF5 attributes and safetensors metadata of the split files. */
  attributes: Record<string, Hdf5Attribute>;
  /** The normalization as arrays beside the latents of the split layout's npz files. */
  npzExtras: Record<string, NpzArray>;
  /** What changes a shard's latents; the rest of the config stays in manifest.json. */
  shardContext: Record<string, string>;
}

/**
 * The facts every file carries, from the normalization's description (see
 * `LatentNormalization.describe`), the models' digests and the config.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const facts = fileFacts(
 *   { latent_channels: 4, scaling_factor: 0.18215, latents_mean: [0, 0.5, 0, 0] },
 *   { encoder: "e".repeat(64), decoder: "d".repeat(64), config: { package: {} } },
 * );
 * assert.equal(facts.attributes.latents_mean, "[0,0.5,0,0]");
 * assert.equal(facts.shardContext.scaling_factor, "0.18215");
 * // A count is an integer in every file; a factor is a float, even when it is 1.
 * assert.deepEqual(facts.npzExtras.latent_channels, { dtype: "<i8", shape: [], data: BigInt64Array.from([4n]) });
 * assert.equal(facts.npzExtras.scaling_factor.dtype, "<f8");
 * assert.equal(facts.attributes.latent_channels, 4n);
 * ```
 */
export function fileFacts(
  recorded: Record<string, number | number[] | string>,
  /** The models' digests (no decoder for an encode-only dataset without one). */
  models: { encoder: string; decoder: string | null; config: unknown },
): FileFacts {
  const asText = (v: number | number[] | string) => typeof v === "string" ? v : JSON.stringify(v);
  const digests = {
    encoder_sha256: models.encoder,
    ...(models.decoder !== null ? { decoder_sha256: models.decoder } : {}),
  };
  return {
    attributes: {
      ...Object.fromEntries(
        Object.entries(recorded).map((
          [k, v],
        ) => [k, Array.isArray(v) ? asText(v) : COUNTS.has(k) ? BigInt(v) : v]),
      ),
      ...digests,
      config: JSON.stringify(models.config),
    },
    npzExtras: npzNormalization(recorded),
    shardContext: {
      ...Object.fromEntries(Object.entries(recorded).map(([k, v]) => [k, asText(v)])),
      ...digests,
    },
  };
}

/** Fields of the normalization that count something: integers in every file. */
const COUNTS = new Set(["latent_channels"]);

/** The normalization as small arrays beside the latents (npz has no attributes). */
function npzNormalization(
  recorded: Record<string, number | number[] | string>,
): Record<string, NpzArray> {
  return Object.fromEntries(
    Object.entries(recorded).map(([k, v]) => [k, npzValue(v, { integer: COUNTS.has(k) })]),
  );
}

/**
 * Presets: the latent normalization, input range and latent channels of the VAE families
 * latentforge knows, each taken from the model's published configuration or reference code
 * (the `source` of each entry). A preset names the export it describes: `taesd` is the
 * `taesd.py` encoder/decoder modules (images in [0, 1], latents already in the diffusion
 * model's space, scale 1), not diffusers' `AutoencoderTiny` wrapper, which maps [-1, 1].
 *
 * @module
 */

/** What a preset fills in. */
export interface Preset {
  /** Stored latent = (z − shift) × scale (per-channel mean/std first, when given). */
  scalingFactor: number;
  shiftFactor: number;
  /** Per-channel mean and standard deviation of z, when the published config carries them. */
  latentsMean?: number[];
  latentsStd?: number[];
  /** The pixel range the encoder takes and the decoder gives. */
  inputRange: [number, number];
  /** Latent channels of the model (checked against the decoder's input). */
  latentChannels: number;
  /** Spatial downsampling of the encoder (checked against the models). */
  spatialFactor: number;
  /** Set for a VAE known to overflow in float16 (NaNs or infinities): the warning to give. */
  fp16Overflow?: string;
  /** Where the numbers come from. */
  source: string;
}

/** The preset names `model.preset` accepts. */
export const PRESET_NAMES = [
  "sd15",
  "sd21",
  "sdxl",
  "sd3",
  "flux1",
  "flux2",
  "taesd",
  "taesdxl",
  "taesd3",
  "taef1",
  "taef2",
] as const;

/** A preset's name. */
export type PresetName = typeof PRESET_NAMES[number];

const TAESD_SOURCE = "madebyollin/taesd: taesd.py (latent channels by weights name) and README " +
  '("images in [0, 1]", "scale_factor for latents is 1")';

/** Every preset, by name. */
export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  sd15: {
    scalingFactor: 0.18215,
    shiftFactor: 0,
    inputRange: [-1, 1],
    latentChannels: 4,
    spatialFactor: 8,
    source: "runwayml/stable-diffusion-v1-5 vae/config.json; CompVis v1-inference.yaml",
  },
  sd21: {
    scalingFactor: 0.18215,
    shiftFactor: 0,
    inputRange: [-1, 1],
    latentChannels: 4,
    spatialFactor: 8,
    source: "stabilityai/stable-diffusion-2-1 vae/config.json",
  },
  sdxl: {
    scalingFactor: 0.13025,
    shiftFactor: 0,
    inputRange: [-1, 1],
    latentChannels: 4,
    spatialFactor: 8,
    fp16Overflow: "the SDXL VAE overflows in float16 (its activations exceed float16's range " +
      "and decode to NaN); use a float32 export or madebyollin/sdxl-vae-fp16-fix",
    source: "stabilityai/sdxl-vae config.json (force_upcast: true); Stability-AI " +
      "generative-models configs/inference/sd_xl_base.yaml",
  },
  sd3: {
    scalingFactor: 1.5305,
    shiftFactor: 0.0609,
    inputRange: [-1, 1],
    latentChannels: 16,
    spatialFactor: 8,
    source: "stabilityai/stable-diffusion-3-medium-diffusers vae/config.json",
  },
  flux1: {
    scalingFactor: 0.3611,
    shiftFactor: 0.1159,
    inputRange: [-1, 1],
    latentChannels: 16,
    spatialFactor: 8,
    source: "black-forest-labs/FLUX.1-dev vae/config.json; flux src/flux/util.py ae_params",
  },
  flux2: {
    // FLUX.2 normalizes its patchified latents with batch-norm running statistics that live in
    // its model code, not in a published number: none is set unless the user gives them.
    scalingFactor: 1,
    shiftFactor: 0,
    inputRange: [-1, 1],
    latentChannels: 32,
    spatialFactor: 8,
    source: "black-forest-labs/FLUX.2-dev vae/config.json (AutoencoderKLFlux2: latent_channels " +
      "32, no scaling_factor or shift_factor; batch-norm statistics in the model)",
  },
  taesd: {
    scalingFactor: 1,
    shiftFactor: 0,
    inputRange: [0, 1],
    latentChannels: 4,
    spatialFactor: 8,
    source: TAESD_SOURCE,
  },
  taesdxl: {
    scalingFactor: 1,
    shiftFactor: 0,
    inputRange: [0, 1],
    latentChannels: 4,
    spatialFactor: 8,
    source: TAESD_SOURCE,
  },
  taesd3: {
    scalingFactor: 1,
    shiftFactor: 0,
    inputRange: [0, 1],
    latentChannels: 16,
    spatialFactor: 8,
    source: TAESD_SOURCE,
  },
  taef1: {
    scalingFactor: 1,
    shiftFactor: 0,
    inputRange: [0, 1],
    latentChannels: 16,
    spatialFactor: 8,
    source: TAESD_SOURCE,
  },
  taef2: {
    scalingFactor: 1,
    shiftFactor: 0,
    inputRange: [0, 1],
    latentChannels: 32,
    spatialFactor: 8,
    source: TAESD_SOURCE,
  },
};

/**
 * The report's figures of every image, gathered one image at a time: the numbers every
 * aggregate chart and median needs (PSNR, SSIM, loss before and after, steps, passes, bucket)
 * as numeric columns, the stop reasons as counts — and the per-image detail (scatter points,
 * loss and PSNR curves, the images the samples show) of at most {@link DETAIL_IMAGES} images,
 * picked evenly over the dataset's order. The report of a dataset of any size then holds, and
 * draws, only that many images' detail; the number left out is said beside each chart it
 * concerns.
 *
 * @module
 */
import type { ReportImage } from "./html.ts";
import type { LossCurve } from "./stats.ts";

/** Images whose detail (scatter points, curves) the report keeps, at most. */
export const DETAIL_IMAGES = 1000;

/** `count` indexes spread evenly over `total`: `floor(i · total / count)` for i < count. */
class EvenPicks {
  readonly #total: number;
  readonly #count: number;
  #taken = 0;

  constructor(total: number, count: number) {
    this.#total = total;
    this.#count = Math.min(count, total);
  }

  /** Whether index `i` (asked in ascending order) is picked. */
  picks(i: number): boolean {
    if (this.#taken >= this.#count) return false;
    if (Math.floor(this.#taken * this.#total / this.#count) !== i) return false;
    this.#taken++;
    return true;
  }
}

/** A growable column of float64 values. */
class Column {
  #data = new Float64Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.#data.length) {
      const grown = new Float64Array(this.#data.length * 2);
      grown.set(this.#data);
      this.#data = grown;
    }
    this.#data[this.length++] = v;
  }

  set(i: number, v: number): void {
    this.#data[i] = v;
  }

  values(): Float64Array {
    return this.#data.subarray(0, this.length);
  }
}

const NUMBERS = [
  "psnrInitial",
  "psnrFinal",
  "ssimInitial",
  "ssimFinal",
  "lossInitial",
  "lossFinal",
  "steps",
  "passes",
] as const;

/** One of the numbers kept of every image. */
export type ImageNumber = typeof NUMBERS[number];

/** Options of {@link ImageTally}. */
export interface TallyOptions {
  /** How many images will be added (the picks are spread over them). */
  expected: number;
  /** Images whose detail is kept. @default {DETAIL_IMAGES} */
  detail?: number;
  /** Images the samples show (`package.samples`), picked as `decodedSamples` picks them. */
  samples?: number;
  /** Or the ids of the images the samples show. */
  sampleIds?: readonly string[];
}

/**
 * Every image's figures, added in the dataset's order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const tally = new ImageTally({ expected: 3000, detail: 2 });
 * for (let i = 0; i < 3000; i++) {
 *   tally.add({
 *     id: `${i}`, split: "train", psnrInitial: 20, psnrFinal: 21 + (i % 2), ssimInitial: 0.7,
 *     ssimFinal: 0.8, lossInitial: 0.5, lossFinal: 0.25, steps: 10, stopReason: "converged",
 *     lossCurve: tally.wantsDetail ? [[0, 0.5], [10, 0.25]] : [],
 *   });
 * }
 * assert.equal(tally.count, 3000);
 * assert.deepEqual(tally.detail.map((i) => i.id), ["0", "1500"]);
 * assert.equal(tally.numbers("psnrFinal").length, 3000);
 * ```
 */
export class ImageTally {
  readonly #columns = Object.fromEntries(NUMBERS.map((n) => [n, new Column()])) as Record<
    ImageNumber,
    Column
  >;
  readonly #buckets: string[] = [];
  readonly #bucketOf = new Column();
  readonly #reasons = new Map<string, number>();
  readonly #detailPicks: EvenPicks;
  readonly #samplePicks: EvenPicks;
  readonly #sampleIds: ReadonlySet<string>;
  #wantsDetail: boolean;
  #wantsSample: boolean;
  /** The images whose detail is kept, and the sampled images, with their place. */
  readonly detail: ReportImage[] = [];
  readonly #sampled = new Map<string, { index: number; image: ReportImage }>();

  constructor({ expected, detail = DETAIL_IMAGES, samples = 0, sampleIds = [] }: TallyOptions) {
    this.#detailPicks = new EvenPicks(expected, detail);
    this.#samplePicks = new EvenPicks(expected, samples);
    this.#sampleIds = new Set(sampleIds);
    this.#wantsDetail = this.#detailPicks.picks(0);
    this.#wantsSample = this.#samplePicks.picks(0);
  }

  /**
   * The tally of `images` (all of them expected), keeping the figures of those `sampleIds` name.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   *
   * assert.equal(ImageTally.of([]).count, 0);
   * ```
   */
  static of(images: readonly ReportImage[], sampleIds: readonly string[] = []): ImageTally {
    const tally = new ImageTally({ expected: images.length, sampleIds });
    for (const image of images) tally.add(image);
    return tally;
  }

  /** Whether the next image's detail is kept: only then are its curves worth reading. */
  get wantsDetail(): boolean {
    return this.#wantsDetail;
  }

  /** Images added. */
  get count(): number {
    return this.#columns.steps.length;
  }

  /** Adds the next image. */
  add(image: ReportImage): void {
    const index = this.count;
    for (const n of NUMBERS) this.#columns[n].push(image[n] ?? NaN);
    this.#reasons.set(image.stopReason, (this.#reasons.get(image.stopReason) ?? 0) + 1);
    if (image.bucket !== undefined) {
      let b = this.#buckets.indexOf(image.bucket);
      if (b < 0) b = this.#buckets.push(image.bucket) - 1;
      this.#bucketOf.push(b);
    } else {
      this.#bucketOf.push(-1);
    }
    const sample = this.#wantsSample || this.#sampleIds.has(image.id);
    if (this.#wantsDetail || sample) {
      const kept = { ...image };
      if (this.#wantsDetail) this.detail.push(kept);
      if (sample) this.#sampled.set(image.id, { index, image: kept });
    }
    this.#wantsDetail = this.#detailPicks.picks(index + 1);
    this.#wantsSample = this.#samplePicks.picks(index + 1);
  }

  /** The ids of the images the samples show, in the dataset's order. */
  get sampleIds(): string[] {
    return [...this.#sampled.keys()];
  }

  /** A sampled image's figures (for the samples' captions). */
  sampled(id: string): ReportImage | undefined {
    return this.#sampled.get(id)?.image;
  }

  /**
   * Fills in the quality measured on decoded samples for sampled images that have no optimize
   * metrics (an encode-only dataset shows its encoder's reconstruction quality on the samples).
   */
  measure(samples: readonly { id: string; psnr: number; ssim: number }[]): void {
    for (const s of samples) {
      const entry = this.#sampled.get(s.id);
      if (!entry || Number.isFinite(entry.image.psnrFinal)) continue;
      const values = {
        psnrInitial: s.psnr,
        psnrFinal: s.psnr,
        ssimInitial: s.ssim,
        ssimFinal: s.ssim,
      };
      for (const [n, v] of Object.entries(values)) {
        this.#columns[n as ImageNumber].set(entry.index, v);
      }
      Object.assign(entry.image, values);
      const shown = this.detail.find((d) => d.id === s.id);
      if (shown) Object.assign(shown, values);
    }
  }

  /** One number of every image, in the order they were added (NaN where unknown). */
  numbers(name: ImageNumber): Float64Array {
    return this.#columns[name].values();
  }

  /** How many images stopped for each reason, in the order the reasons first came. */
  get stopReasons(): ReadonlyMap<string, number> {
    return this.#reasons;
  }

  /** Every bucketed image's bucket and PSNR before and after, one at a time. */
  *bucketed(): Generator<{ bucket: string; psnrInitial: number; psnrFinal: number }> {
    const bucket = this.#bucketOf.values();
    const before = this.numbers("psnrInitial");
    const after = this.numbers("psnrFinal");
    for (let i = 0; i < bucket.length; i++) {
      if (bucket[i] >= 0) {
        yield { bucket: this.#buckets[bucket[i]], psnrInitial: before[i], psnrFinal: after[i] };
      }
    }
  }

  /** The loss curves, or PSNR curves, of the images whose detail is kept. */
  curves(kind: "loss" | "psnr"): LossCurve[] {
    return this.detail.map((i) => kind === "loss" ? i.lossCurve : i.psnrCurve ?? []);
  }

  /**
   * What to say under a chart of the kept detail when it is not every image's, or "".
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   *
   * const tally = new ImageTally({ expected: 3, detail: 1 });
   * for (const id of ["a", "b", "c"]) {
   *   tally.add({
   *     id, split: "train", psnrInitial: 20, psnrFinal: 21, ssimInitial: 0.7, ssimFinal: 0.8,
   *     lossInitial: 0.5, lossFinal: 0.25, steps: 10, stopReason: "converged", lossCurve: [],
   *   });
   * }
   * assert.equal(tally.detailNote(), "1 of 3 images shown, evenly spread over the dataset; 2 not shown.");
   * ```
   */
  detailNote(): string {
    const shown = this.detail.length;
    if (shown === this.count) return "";
    const n = (v: number) => v.toLocaleString("en-US");
    return `${n(shown)} of ${n(this.count)} images shown, evenly spread over the dataset; ` +
      `${n(this.count - shown)} not shown.`;
  }
}

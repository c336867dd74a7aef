/**
 * L-BFGS with a strong-Wolfe line search as a method of the optimization loop, step for step
 * `torch.optim.LBFGS(history_size=…, line_search_fn="strong_wolfe")`: the first direction is the
 * negative gradient with a first step of `min(1, 1/‖g‖₁)·lr`, later ones come from the memory of
 * the last `history` pairs with a first step of `lr`; each line search takes as many evaluations
 * as it needs (at most 26), and a step is complete when it settles. Every evaluation, line-search
 * ones included, is one pass of the loop, so images in one batch sit at different places of
 * their searches and the batch stays full.
 *
 * The method stops ("converged") on torch's tests: the largest |gradient| at most 1e-7, a step
 * whose largest |change| is at most 1e-9, a loss that changed by less than 1e-9, or a direction
 * that is not a descent direction (slope above −1e-9).
 *
 * Its checkpoint holds the latent, loss and gradient at the last step, the memory, the current
 * direction, and the values of every evaluation of the current line search; the search is rebuilt
 * by replaying them, so a resumed run takes the same steps, bit for bit.
 *
 * @module
 */
import {
  CheckpointError,
  type CheckpointParts,
  checkpointReader,
  partsUnder,
  prefixParts,
} from "./checkpoint.ts";
import { dot, LbfgsMemory } from "./lbfgs.ts";
import { type LineSearchPoint, type LineSearchResult, strongWolfe } from "./line_search.ts";
import { firstNonFinite, type MethodState, NonFiniteError, type Observation } from "./method.ts";
import type { StopReason } from "./stopping.ts";

/** The settings of L-BFGS. */
export interface LbfgsSettings {
  /** Pairs kept in the memory (`optimize.lbfgs.history`). */
  history: number;
  /** Scale of the first step each line search tries (torch's `lr`; 1 in `optimize`). */
  lr: number;
}

/** torch.optim.LBFGS's default tolerances. */
const TOLERANCE_GRAD = 1e-7;
const TOLERANCE_CHANGE = 1e-9;

/** Where the method is: before its first evaluation, between steps, or in a line search. */
const Phase = { Start: 0, BetweenSteps: 1, Searching: 2 } as const;

interface Trial {
  t: number;
  f: number;
  g: Float32Array;
}

const maxAbs = (v: Float32Array) => v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * One image's L-BFGS state.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * // f(x) = Σ (xᵢ − 1)²: the first step goes along −g, the second is the memory's Newton step.
 * const lbfgs = LbfgsMethod.start(new Float32Array(2), { history: 10, lr: 1 });
 * const value = (x: Float32Array) => x.reduce((s, v) => s + (v - 1) ** 2, 0);
 * let passes = 0;
 * while (true) {
 *   const x = lbfgs.point;
 *   const { stop } = lbfgs.observe(value(x), x.map((v) => 2 * (v - 1)), ++passes);
 *   if (stop || lbfgs.advance()) break;
 * }
 * assert.deepEqual(Array.from(lbfgs.point), [1, 1]);
 * assert.equal(lbfgs.steps, 2);
 * ```
 */
export class LbfgsMethod implements MethodState {
  readonly name = "lbfgs";
  readonly #settings: LbfgsSettings;
  readonly #x: Float32Array;
  readonly #d: Float32Array;
  readonly #point: Float32Array;
  readonly #memory: LbfgsMemory;
  #phase: number = Phase.Start;
  #f = NaN;
  #g: Float32Array;
  #steps = 0;
  /** The current line search: its first step, slope, the step being evaluated, the values so far. */
  #t0 = 0;
  #gtd = 0;
  #t = 0;
  #trials: Trial[] = [];
  #search: Generator<number, LineSearchResult, LineSearchPoint> | null = null;

  private constructor(x: Float32Array, settings: LbfgsSettings, memory: LbfgsMemory) {
    this.#settings = settings;
    this.#x = x;
    this.#d = new Float32Array(x.length);
    this.#g = new Float32Array(x.length);
    this.#point = x.slice();
    this.#memory = memory;
  }

  /** A fresh state at `latent` (copied). */
  static start(latent: Float32Array, settings: LbfgsSettings): LbfgsMethod {
    const memory = new LbfgsMemory(latent.length, settings.history);
    return new LbfgsMethod(latent.slice(), settings, memory);
  }

  /** The state `save` wrote; `source` names the checkpoint in errors. */
  static resume(
    parts: CheckpointParts,
    size: number,
    settings: LbfgsSettings,
    source: string,
  ): LbfgsMethod {
    const read = checkpointReader(parts, source);
    const memory = LbfgsMemory.restore(partsUnder("memory", parts), size, settings.history, source);
    const m = new LbfgsMethod(read.float32("x", size), settings, memory);
    m.#phase = read.number("phase");
    m.#f = read.number("f");
    m.#g = read.float32("g", size);
    m.#steps = read.number("steps");
    m.#d.set(read.float32("d", size));
    m.#point.set(m.#x);
    if (m.#phase !== Phase.Searching) return m;
    m.#t0 = read.number("t0");
    m.#gtd = read.number("gtd");
    m.#beginSearch();
    const trials = read.number("trials");
    const ts = read.float64("trial_t", trials);
    const fs = read.float64("trial_f", trials);
    const gs = read.float32("trial_g", trials * size);
    for (let k = 0; k < trials; k++) {
      if (m.#t !== ts[k]) {
        throw new CheckpointError(
          `${source}: its line search replays to step ${m.#t} at trial ${k}, but it recorded ${
            ts[k]
          }`,
        );
      }
      const g = gs.slice(k * size, (k + 1) * size);
      m.#trials.push({ t: ts[k], f: fs[k], g });
      const next = m.#search!.next({ f: fs[k], g, gtd: dot(g, m.#d) });
      if (next.done) {
        throw new CheckpointError(`${source}: its line search ended before trial ${k + 1}`);
      }
      m.#moveTo(next.value);
    }
    return m;
  }

  get point(): Float32Array {
    return this.#point;
  }

  get steps(): number {
    return this.#steps;
  }

  observe(loss: number, gradient: Float32Array, pass: number): Observation {
    const bad = firstNonFinite(gradient);
    if (bad >= 0) {
      throw new NonFiniteError(
        `gradient is ${gradient[bad]} at step ${this.#steps} (pass ${pass})`,
      );
    }
    const g = gradient.slice();
    if (this.#phase === Phase.Start) {
      this.#f = loss;
      this.#g = g;
      this.#phase = Phase.BetweenSteps;
      return { stepLoss: loss, stop: maxAbs(g) <= TOLERANCE_GRAD ? "converged" : null };
    }
    this.#trials.push({ t: this.#t, f: loss, g });
    const next = this.#search!.next({ f: loss, g, gtd: dot(g, this.#d) });
    if (!next.done) {
      this.#moveTo(next.value);
      return { stepLoss: null, stop: null };
    }
    return this.#complete(next.value);
  }

  advance(): StopReason | null {
    if (this.#phase === Phase.Searching) return null;
    const g = this.#g;
    if (this.#steps === 0) {
      for (let i = 0; i < g.length; i++) this.#d[i] = -g[i];
      const l1 = g.reduce((s, v) => s + Math.abs(v), 0);
      this.#t0 = Math.min(1, 1 / l1) * this.#settings.lr;
    } else {
      this.#memory.direction(g, this.#d);
      this.#t0 = this.#settings.lr;
    }
    this.#gtd = dot(g, this.#d);
    if (this.#gtd > -TOLERANCE_CHANGE) return "converged";
    this.#beginSearch();
    return null;
  }

  save(): CheckpointParts {
    const n = this.#x.length;
    const trialG = new Float32Array(this.#trials.length * n);
    this.#trials.forEach((trial, k) => trialG.set(trial.g, k * n));
    const memory = prefixParts("memory", this.#memory.save());
    return {
      method: this.name,
      numbers: {
        phase: this.#phase,
        f: this.#f,
        steps: this.#steps,
        t0: this.#t0,
        gtd: this.#gtd,
        trials: this.#trials.length,
        ...memory.numbers,
      },
      arrays: {
        x: this.#x,
        g: this.#g,
        d: this.#d,
        trial_t: Float64Array.from(this.#trials, (trial) => trial.t),
        trial_f: Float64Array.from(this.#trials, (trial) => trial.f),
        trial_g: trialG,
        ...memory.arrays,
      },
    };
  }

  #beginSearch(): void {
    this.#trials = [];
    this.#search = strongWolfe({
      f: this.#f,
      g: this.#g,
      gtd: this.#gtd,
      t: this.#t0,
      dNorm: maxAbs(this.#d),
    });
    this.#phase = Phase.Searching;
    this.#moveTo(this.#search.next().value as number);
  }

  #moveTo(t: number): void {
    this.#t = t;
    const x = this.#x, d = this.#d;
    for (let i = 0; i < x.length; i++) this.#point[i] = x[i] + t * d[i];
  }

  /** The line search settled at `t`: the step is taken, the memory learns the pair. */
  #complete({ t, f, g }: LineSearchResult): Observation {
    const n = this.#x.length;
    const s = new Float32Array(n);
    const y = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = t * this.#d[i];
      y[i] = g[i] - this.#g[i];
      // The same expression as the point evaluated at t, so the step lands on that very latent.
      this.#x[i] = this.#x[i] + t * this.#d[i];
    }
    this.#point.set(this.#x);
    const change = Math.abs(f - this.#f);
    this.#f = f;
    this.#g = g;
    this.#steps++;
    this.#phase = Phase.BetweenSteps;
    this.#search = null;
    this.#trials = [];
    this.#memory.push(s, y);
    const still = maxAbs(g) <= TOLERANCE_GRAD || maxAbs(s) <= TOLERANCE_CHANGE ||
      change < TOLERANCE_CHANGE;
    return { stepLoss: f, stop: still ? "converged" : null };
  }
}

/**
 * One single-input model (a VAE encoder or decoder) on an ONNX Runtime session: float32 in and
 * out for its callers whatever the model's own precision. A float16 model runs as given where
 * the provider has float16 kernels for it; otherwise it is rewritten as float32, with one line
 * saying so (and always when its preset is known to overflow in float16).
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { ModelIoError, SessionError } from "../onnx/errors.ts";
import { readModel } from "../onnx/model_io.ts";
import { openSession, type SessionLog } from "../onnx/session.ts";
import { hasFloat16Interface, modelBytes, toHalves, upcastModel } from "./fp16.ts";

/** Raised for a model latentforge cannot use as configured. */
export class ModelError extends Error {
  override readonly name = "ModelError";
}

/** How sessions are opened. */
export interface RuntimeOptions {
  /** Execution providers in order (default: the platform's). */
  providers?: readonly string[];
  threads?: number;
  log: SessionLog;
}

/** Options of {@link ModelSession.open}. */
export interface ModelSessionOptions {
  /**
   * Set when the model's family is known to overflow in float16: a float16 model then runs
   * as float32, and the line says why.
   */
  float16Overflow?: string;
}

/** A model's declared input or output: element type and dims (strings are symbolic). */
export interface DeclaredValue {
  name: string;
  type: string;
  dims: (number | string)[];
}

function declared(meta: ort.InferenceSession.ValueMetadata): DeclaredValue {
  return meta.isTensor
    ? { name: meta.name, type: meta.type, dims: [...meta.shape] }
    : { name: meta.name, type: "non-tensor", dims: [] };
}

/** One single-input model on a session. */
export class ModelSession {
  readonly session: ort.InferenceSession;
  readonly provider: string;
  /** Names the model in messages, e.g. `model.decoder (vae/decoder.onnx)`. */
  readonly label: string;
  readonly input: DeclaredValue;
  readonly output: DeclaredValue;
  /** True when a float16 model was rewritten as float32. */
  readonly upcast: boolean;

  private constructor(
    session: ort.InferenceSession,
    provider: string,
    label: string,
    upcast: boolean,
  ) {
    this.session = session;
    this.provider = provider;
    this.label = label;
    this.upcast = upcast;
    this.input = declared(session.inputMetadata[0]);
    this.output = declared(session.outputMetadata[0]);
  }

  /**
   * Opens a model file; the provider used is logged.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { GraphBuilder } from "../onnx/graph_builder.ts";
   * import { writeModel } from "../onnx/model_io.ts";
   * const dir = await Deno.makeTempDir();
   * try {
   *   const b = new GraphBuilder();
   *   b.output(b.node("Tanh", [b.input("latent", 1, ["n", 4, 8, 8])]), 1, ["n", 4, 8, 8]);
   *   await writeModel(`${dir}/vae_decoder.onnx`, b.graph);
   *   const lines: string[] = [];
   *   const decoder = await ModelSession.open(`${dir}/vae_decoder.onnx`, "model.decoder", {
   *     providers: ["cpu"],
   *     log: (line) => lines.push(line),
   *   });
   *   assert.deepEqual(lines, ["model.decoder: running on cpu"]);
   *   await decoder.release();
   * } finally {
   *   await Deno.remove(dir, { recursive: true });
   * }
   * ```
   */
  static async open(
    path: string,
    label: string,
    runtime: RuntimeOptions,
    { float16Overflow }: ModelSessionOptions = {},
  ): Promise<ModelSession> {
    const options = {
      providers: runtime.providers,
      intraOpThreads: runtime.threads,
      log: runtime.log,
    };
    let opened;
    let upcast = false;
    try {
      opened = await openSession(path, options);
    } catch (e) {
      if (!(e instanceof SessionError)) throw e;
      const model = await readModel(path).catch((unreadable) => {
        // Not even a readable model: the session's own error says what is wrong with it.
        if (unreadable instanceof ModelIoError) return null;
        throw unreadable;
      });
      if (!model || !hasFloat16Interface(model)) throw new ModelError(`${label}: ${e.message}`);
      upcastModel(model);
      runtime.log(
        `${label} is float16 and no provider runs it as given (${
          e.message.replace(/^no execution provider could open the model; /, "")
        }); running it as float32`,
      );
      opened = await openSession(modelBytes(model), options).catch((again: Error) => {
        throw new ModelError(`${label}: ${again.message}`);
      });
      upcast = true;
    }
    const input = opened.session.inputMetadata[0];
    if (float16Overflow && !upcast && input?.isTensor && input.type === "float16") {
      await opened.session.release();
      const model = await readModel(path);
      upcastModel(model);
      runtime.log(`${label} is float16 and ${float16Overflow}; running it as float32`);
      opened = await openSession(modelBytes(model), options);
      upcast = true;
    }
    const { session, provider } = opened;
    if (session.inputNames.length !== 1 || session.outputNames.length < 1) {
      await session.release();
      throw new ModelError(
        `${label}: expected one input, found ${session.inputNames.length} (${session.inputNames})`,
      );
    }
    for (
      const [what, meta] of [["input", session.inputMetadata[0]], [
        "output",
        session.outputMetadata[0],
      ]] as const
    ) {
      if (!meta.isTensor || (meta.type !== "float32" && meta.type !== "float16")) {
        await session.release();
        throw new ModelError(
          `${label}: expected a float32 or float16 ${what}, found ${
            meta.isTensor ? meta.type : "a non-tensor value"
          }`,
        );
      }
    }
    runtime.log(`${label}: running on ${provider}${upcast ? " (as float32)" : ""}`);
    return new ModelSession(session, provider, label, upcast);
  }

  /**
   * Runs the model on one float32 tensor and returns its first output as float32.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { GraphBuilder } from "../onnx/graph_builder.ts";
   * import { writeModel } from "../onnx/model_io.ts";
   * const dir = await Deno.makeTempDir();
   * try {
   *   const b = new GraphBuilder();
   *   b.output(b.node("Neg", [b.input("latent", 1, ["n", 4, 8, 8])]), 1, ["n", 4, 8, 8]);
   *   await writeModel(`${dir}/vae_decoder.onnx`, b.graph);
   *   const decoder = await ModelSession.open(`${dir}/vae_decoder.onnx`, "model.decoder", {
   *     providers: ["cpu"],
   *     log: () => {},
   *   });
   *   const out = await decoder.run(new Float32Array(2 * 4 * 8 * 8).fill(0.5), [2, 4, 8, 8]);
   *   assert.deepEqual(out.dims, [2, 4, 8, 8]);
   *   assert.equal(out.data[0], -0.5);
   *   await assert.rejects(decoder.run(new Float32Array(4), [1, 4, 1, 1]), ModelError);
   *   await decoder.release();
   * } finally {
   *   await Deno.remove(dir, { recursive: true });
   * }
   * ```
   */
  async run(data: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> {
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run({ [this.session.inputNames[0]]: this.#tensor(data, dims) });
    } catch (e) {
      // The runtime's own message is not for the user's terminal: the shapes say what failed.
      throw new ModelError(
        `${this.label}: cannot run on input [${dims.join(", ")}] (declared [${
          this.input.dims.join(", ")
        }])`,
        { cause: e },
      );
    }
    const tensor = out[this.session.outputNames[0]];
    const values = tensor.type === "float32"
      ? tensor.data as Float32Array
      : Float32Array.from(tensor.data as ArrayLike<number>);
    return { data: values, dims: [...tensor.dims] };
  }

  #tensor(data: Float32Array, dims: number[]): ort.Tensor {
    if (this.input.type !== "float16") return new ort.Tensor("float32", data, dims);
    const halves = toHalves(data);
    const tensor = new ort.Tensor("float16", halves, dims);
    // onnxruntime-common wraps float16 data in Float16Array where the runtime has one (Deno
    // does), but the Node binding reads float16 only from a Uint16Array: hand it the halves.
    (tensor as unknown as { cpuData: Uint16Array }).cpuData = halves;
    return tensor;
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

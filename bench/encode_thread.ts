/**
 * The encoder's session on a thread of its own, for `deno task bench encode --encoder-thread`:
 * what the pipeline would do if its model sessions did not run on the JavaScript thread.
 * onnxruntime-node runs a session synchronously on the calling thread, so while the encode task
 * waits for a batch nothing else of the run moves: no image is read, decoded or stored. Here a
 * worker opens the same model with the same options (lib/onnx/session.ts) and runs it; the main
 * thread only posts the batch and gets the output back.
 *
 * Used as a worker (this module) and from bench/encode_gaps.ts ({@linkcode EncoderThread}).
 *
 * @module
 */
import { openSession } from "../lib/onnx/session.ts";
import type * as ort from "onnxruntime-node";

/** Raised when the worker reports a failure; the message is the worker's. */
class EncoderThreadError extends Error {
  override readonly name = "EncoderThreadError";
}

type Request =
  | { open: string; providers?: readonly string[]; threads?: number }
  | { data: Float32Array; dims: number[] };
type Reply = { opened: true } | { data: Float32Array; dims: number[] } | { error: string };

/** A session opened and run on a worker thread. */
export class EncoderThread {
  readonly #worker = new Worker(import.meta.url, { type: "module" });
  #busy: Promise<unknown> = Promise.resolve();

  #call(request: Request, transfer: Transferable[] = []): Promise<Reply> {
    // One request at a time: replies come back in order.
    const reply = this.#busy.then(() =>
      new Promise<Reply>((resolve) => {
        this.#worker.onmessage = (e: MessageEvent<Reply>) => resolve(e.data);
        this.#worker.postMessage(request, transfer);
      })
    );
    this.#busy = reply;
    return reply.then((r) => {
      if ("error" in r) throw new EncoderThreadError(r.error);
      return r;
    });
  }

  /** Opens `model` in the worker as ModelSession opens it (providers, intra-op threads). */
  async open(model: string, providers?: readonly string[], threads?: number): Promise<void> {
    await this.#call({ open: model, providers, threads });
  }

  /** Runs the model on one batch; the batch's buffer is handed over to the worker. */
  async run(data: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> {
    return await this.#call({ data, dims }, [data.buffer as ArrayBuffer]) as {
      data: Float32Array;
      dims: number[];
    };
  }

  /** Ends the worker. */
  close(): void {
    this.#worker.terminate();
  }
}

// The worker's side.
const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<Request>) => void) | null;
  postMessage(message: Reply, transfer?: Transferable[]): void;
};
if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  let session: ort.InferenceSession | undefined;
  scope.onmessage = async (e) => {
    const request = e.data;
    try {
      if ("open" in request) {
        ({ session } = await openSession(request.open, {
          providers: request.providers,
          intraOpThreads: request.threads,
          log: () => {},
        }));
        scope.postMessage({ opened: true });
        return;
      }
      const { Tensor } = await import("onnxruntime-node");
      const out = await session!.run({
        [session!.inputNames[0]]: new Tensor("float32", request.data, request.dims),
      });
      const tensor = out[session!.outputNames[0]];
      const data = tensor.data as Float32Array;
      scope.postMessage({ data, dims: [...tensor.dims] }, [data.buffer as ArrayBuffer]);
    } catch (error) {
      // Handed to the main thread, which raises it there.
      scope.postMessage({ error: error instanceof Error ? error.message : String(error) });
    }
  };
}

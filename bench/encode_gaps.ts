/**
 * Where the encoder's time goes inside a pipeline run, for `deno task bench encode`: the same
 * pipeline and CLI as `deno task run`, in this process, with the encode task's model session
 * and item source watched. It records how long the encoder runs, how long the encode task
 * waits for preprocessed images, and how many images each batch gets.
 *
 * usage: deno run -A --unstable-kv --unstable-cron bench/encode_gaps.ts [--encoder-thread]
 *          run encode --config …
 * prints the CLI's output, then one JSON line on stderr starting with `encode-gaps `. With
 * `--encoder-thread` the encoder's session runs on a worker thread (bench/encode_thread.ts).
 *
 * @module
 */
import { main } from "../lib/cli/main.ts";
import type { EachTask, ItemSource } from "../lib/dag/task.ts";
import type { OpenedVae } from "../lib/model/vae.ts";
import { pipeline } from "../pipeline.ts";
import { EncoderThread } from "./encode_thread.ts";

/** What one watched run measured (milliseconds). */
export interface EncodeGaps {
  /** From the first encoder call's start to the last one's end. */
  spanMs: number;
  /** Inside the encoder's session runs. */
  encoderMs: number;
  /** Waiting in the item source for images that were not preprocessed yet. */
  waitMs: number;
  /** Recording results (the latent's store write is inside the task, before this). */
  recordMs: number;
  /** How many batches had 1, 2, … images. */
  batchSizes: Record<number, number>;
}

const gaps: EncodeGaps = { spanMs: 0, encoderMs: 0, waitMs: 0, recordMs: 0, batchSizes: {} };
let first = 0, last = 0;

const onThread = Deno.args.includes("--encoder-thread");
let thread: EncoderThread | undefined;

/** The encode task's session, with its runs timed (and on a worker thread, if asked). */
async function watchedVae(
  vae: OpenedVae,
  model: { path: string; providers?: readonly string[]; threads?: number },
): Promise<OpenedVae> {
  const encoder = vae.encoder;
  let run = encoder.run.bind(encoder);
  if (onThread) {
    thread = new EncoderThread();
    await thread.open(model.path, model.providers, model.threads);
    run = (data, dims) => thread!.run(data, dims);
  }
  encoder.run = async (data, dims) => {
    const started = performance.now();
    first ||= started;
    try {
      return await run(data, dims);
    } finally {
      last = performance.now();
      gaps.encoderMs += last - started;
    }
  };
  return vae;
}

function watchedSource(source: ItemSource): ItemSource {
  return {
    group: source.group,
    poll: (max) => source.poll(max),
    context: (item) => source.context(item),
    next: async (max) => {
      const started = performance.now();
      const items = await source.next(max);
      gaps.waitMs += performance.now() - started;
      if (items.length > 0) {
        gaps.batchSizes[items.length] = (gaps.batchSizes[items.length] ?? 0) + 1;
      }
      return items;
    },
    done: async (item, result, options) => {
      const started = performance.now();
      await source.done(item, result, options);
      gaps.recordMs += performance.now() - started;
    },
  };
}

type EncodeState = { open: () => Promise<OpenedVae> };
type ModelConfig = { model: { providers?: string[]; threads?: number } };

const tasks = pipeline.tasks.map((task) => {
  if (task.name !== "encode") return task;
  const encode = task as EachTask<unknown, EncodeState>;
  const watched: EachTask<unknown, EncodeState> = {
    ...encode,
    prepare: async (ctx) => {
      const { state } = await encode.prepare!(ctx);
      const open = state.open;
      const { providers, threads } = (ctx.config as ModelConfig).model;
      const model = { path: ctx.files.encoder.path, providers, threads };
      let opened: Promise<OpenedVae> | undefined;
      return {
        state: { ...state, open: () => opened ??= open().then((vae) => watchedVae(vae, model)) },
      };
    },
    runBatched: (ctx, source, state) => encode.runBatched!(ctx, watchedSource(source), state),
  };
  return watched;
});

const args = Deno.args.filter((a) => a !== "--encoder-thread");
const code = await main({ ...pipeline, tasks } as typeof pipeline, args);
thread?.close();
gaps.spanMs = last - first;
console.error(`encode-gaps ${JSON.stringify(gaps)}`);
Deno.exit(code);

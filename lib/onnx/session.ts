/**
 * Opening ONNX Runtime sessions with an ordered list of execution providers, falling back from
 * one that cannot be used to the next with one short line. ONNX Runtime's own log goes quiet
 * (its error blocks never reach the terminal); its message is kept as the line's `detail`, which
 * `--json` output carries for debugging. A provider that cannot load at all (library missing, no
 * device) is remembered for the rest of the process, so later sessions skip it without a word.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { SessionError } from "./errors.ts";
import {
  currentPlatform,
  defaultProviders,
  describeProviderFailure,
  platformReason,
  providerConfig,
  type ProviderName,
} from "./providers.ts";

/** Receives a line for a person and, optionally, the third-party text behind it. */
export type SessionLog = (line: string, detail?: string) => void;

/** Options of {@link openSession}. */
export interface SessionOptions {
  /** Execution providers to try in order (default: the platform's, see `providers.ts`). */
  providers?: readonly string[];
  /** Intra-op threads (default: the runtime's choice). Fix it for reproducible CPU results. */
  intraOpThreads?: number;
  /** Inter-op threads (default 1). */
  interOpThreads?: number;
  /** Graph optimization level (default "all"). */
  graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
  /**
   * Use ONNX Runtime's CPU memory arena (default false). The arena grows in power-of-two
   * chunks and never shrinks; gradient graphs hold many large activations, and without it
   * their peak RSS stays near the live set (about half, measured on the SD-shaped decoder).
   */
  cpuMemoryArena?: boolean;
  /** Extra session options (e.g. profiling), merged over the ones above. */
  extra?: ort.InferenceSession.SessionOptions;
  /** Receives one line per provider that could not be used (default: console.warn). */
  log?: SessionLog;
}

/** An open session and the provider it runs on. */
export interface OpenedSession {
  session: ort.InferenceSession;
  provider: string;
}

// ONNX Runtime prints provider load failures itself (red blocks on stderr) before throwing;
// the failure is told by latentforge instead, so only fatal runtime errors may print.
ort.env.logLevel = "fatal";

/** Providers that could not load in this process, with the reason already told. */
const unavailable = new Map<string, string>();

/**
 * Forgets which providers failed to load (tests that change the environment use it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * forgetUnavailableProviders();
 * // A provider that failed to load is tried again (and its failure told again).
 * assert.equal(forgetUnavailableProviders(), undefined);
 * ```
 */
export function forgetUnavailableProviders(): void {
  unavailable.clear();
}

/**
 * Opens a session on the first provider of `providers` that works.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GraphBuilder } from "./graph_builder.ts";
 * const b = new GraphBuilder();
 * b.output(b.node("Relu", [b.input("x", 1, [2])]), 1, [2]);
 * const lines: string[] = [];
 * const { session, provider } = await openSession(b.toBytes(), {
 *   providers: ["cuda", "cpu"],
 *   intraOpThreads: 2,
 *   log: (line) => lines.push(line),
 * });
 * // Without CUDA's library, a line says so (once per process) and the CPU runs the model.
 * assert.ok(["cuda", "cpu"].includes(provider));
 * assert.ok(lines.every((line) => line.startsWith("provider cuda unavailable")));
 * await session.release();
 * ```
 */
export async function openSession(
  model: string | Uint8Array,
  {
    providers,
    intraOpThreads,
    interOpThreads = 1,
    graphOptimizationLevel = "all",
    cpuMemoryArena = false,
    extra = {},
    log = (line: string) => console.warn(line),
  }: SessionOptions = {},
): Promise<OpenedSession> {
  const order: readonly string[] = providers ?? await defaultProviders();
  if (order.length === 0) throw new SessionError("no execution provider requested");
  const platform = currentPlatform();
  const tried: string[] = [];
  for (let i = 0; i < order.length; i++) {
    const provider = order[i];
    const next = order.slice(i + 1).find((p) =>
      !unavailable.has(p) && platformReason(p as ProviderName, platform) === null
    );
    const known = unavailable.get(provider);
    if (known !== undefined) {
      tried.push(`${provider} (${known})`);
      continue;
    }
    const impossible = platformReason(provider as ProviderName, platform);
    if (impossible) {
      unavailable.set(provider, impossible);
      tried.push(`${provider} (${impossible})`);
      if (next) log(`provider ${provider} unavailable (${impossible}), falling back to ${next}`);
      continue;
    }
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [providerConfig(provider)],
      graphOptimizationLevel,
      interOpNumThreads: interOpThreads,
      executionMode: "sequential",
      enableCpuMemArena: cpuMemoryArena,
      logSeverityLevel: 3,
      ...(intraOpThreads ? { intraOpNumThreads: intraOpThreads } : {}),
      ...extra,
    };
    try {
      const session = typeof model === "string"
        ? await ort.InferenceSession.create(model, options)
        : await ort.InferenceSession.create(model, options);
      return { session, provider };
    } catch (e) {
      const message = (e as Error).message ?? String(e);
      const failure = describeProviderFailure(provider, message);
      if (failure.unavailable) unavailable.set(provider, failure.reason);
      tried.push(`${provider} (${failure.reason})`);
      if (next) {
        log(
          `provider ${provider} unavailable (${failure.reason}), falling back to ${next}`,
          message,
        );
      }
    }
  }
  throw new SessionError(`no execution provider could open the model; tried ${tried.join(", ")}`);
}

/**
 * Opening ONNX Runtime sessions with an ordered list of execution providers, falling back
 * (with a log line) from one that is unavailable to the next.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { SessionError } from "./errors.ts";

/** Options of {@link openSession}. */
export interface SessionOptions {
  /** Execution providers to try in order (default ["cpu"]). */
  providers?: string[];
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
  log?: (line: string) => void;
}

/** An open session and the provider it runs on. */
export interface OpenedSession {
  session: ort.InferenceSession;
  provider: string;
}

/**
 * Opens a session on the first provider of `providers` that works.
 *
 * @example
 * ```ts
 * const { session, provider } = await openSession("model.onnx", {
 *   providers: ["cuda", "cpu"],
 *   intraOpThreads: 2,
 * });
 * ```
 */
export async function openSession(
  model: string | Uint8Array,
  {
    providers = ["cpu"],
    intraOpThreads,
    interOpThreads = 1,
    graphOptimizationLevel = "all",
    cpuMemoryArena = false,
    extra = {},
    log = (line: string) => console.warn(line),
  }: SessionOptions = {},
): Promise<OpenedSession> {
  if (providers.length === 0) throw new SessionError("no execution provider requested");
  const failures: string[] = [];
  for (let i = 0; i < providers.length; i++) {
    const provider = providers[i];
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [provider],
      graphOptimizationLevel,
      interOpNumThreads: interOpThreads,
      executionMode: "sequential",
      enableCpuMemArena: cpuMemoryArena,
      // The reason of a failed attempt goes to `log`; spare stderr the runtime's own copy.
      logSeverityLevel: i < providers.length - 1 ? 4 : 3,
      ...(intraOpThreads ? { intraOpNumThreads: intraOpThreads } : {}),
      ...extra,
    };
    try {
      const session = typeof model === "string"
        ? await ort.InferenceSession.create(model, options)
        : await ort.InferenceSession.create(model, options);
      return { session, provider };
    } catch (e) {
      const reason = ((e as Error).message ?? String(e)).split("\n")[0];
      failures.push(`${provider} (${reason})`);
      const next = providers[i + 1];
      if (next) log(`provider ${provider} unavailable (${reason}), falling back to ${next}`);
    }
  }
  throw new SessionError(
    `no execution provider could open the model; tried ${failures.join(", ")}`,
  );
}

/**
 * The execution providers onnxruntime-node can use, which of them a platform tries by default,
 * and how a provider's failure to load is told to a person.
 *
 * The npm binaries carry CPU and WebGPU on every platform, CoreML on macOS and DirectML on
 * Windows; CUDA and TensorRT need the package's CUDA install script (their libraries then sit
 * next to ONNX Runtime's). Default orders, from fastest to always-there:
 *
 * - Linux: `cuda` (when its library is installed), `webgpu` (when a hardware GPU adapter is
 *   found), `cpu`
 * - macOS: `coreml`, `webgpu` (hardware adapter), `cpu`
 * - Windows: `cuda` (when installed), `dml`, `webgpu` (hardware adapter), `cpu`
 *
 * WebGPU joins a default only on a hardware adapter: where the only adapter is a CPU
 * rasterizer (Mesa's llvmpipe/lavapipe, SwiftShader, Microsoft's Basic Render Driver) it is
 * about 30× slower than ONNX Runtime's CPU provider. Named explicitly, it runs anywhere.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The providers `model.providers` accepts. */
export const PROVIDER_NAMES = ["cpu", "cuda", "tensorrt", "webgpu", "coreml", "dml"] as const;

/** One execution provider's name. */
export type ProviderName = typeof PROVIDER_NAMES[number];

/** The operating systems onnxruntime-node ships binaries for. */
export type Platform = "linux" | "darwin" | "windows";

/** What a GPU adapter says about itself (Deno's `navigator.gpu` adapter info). */
export interface AdapterInfo {
  description: string;
  vendor?: string;
  isFallbackAdapter?: boolean;
}

const SOFTWARE_RASTERIZERS = /llvmpipe|lavapipe|softpipe|swiftshader|basic render|warp/i;

/**
 * Whether an adapter is a CPU rasterizer rather than a GPU.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(isSoftwareAdapter({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" }), true);
 * ```
 */
export function isSoftwareAdapter(info: AdapterInfo): boolean {
  return info.isFallbackAdapter === true || SOFTWARE_RASTERIZERS.test(info.description);
}

let adapterProbe: Promise<AdapterInfo | null> | undefined;

/**
 * The WebGPU adapter Deno finds (high-performance preference), or null when there is none.
 * Asked once per process.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const adapter = await webgpuAdapter();
 * assert.equal(await webgpuAdapter(), adapter); // asked once per process
 * ```
 */
export function webgpuAdapter(): Promise<AdapterInfo | null> {
  adapterProbe ??= (async () => {
    const gpu = (navigator as { gpu?: GPU }).gpu;
    if (!gpu) return null;
    let adapter;
    try {
      adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
    } catch (e) {
      // Bad options would be a TypeError, a bug here; any other rejection means the system's
      // WebGPU backend could not start (no driver or loader): no adapter, as null says.
      if (e instanceof TypeError) throw e;
      return null;
    }
    if (!adapter) return null;
    const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
    return {
      description: info.description || info.device || "unknown adapter",
      vendor: info.vendor,
      isFallbackAdapter: info.isFallbackAdapter,
    };
  })();
  return adapterProbe;
}

/** The platform this process runs on. */
export function currentPlatform(): Platform {
  return Deno.build.os === "darwin" ? "darwin" : Deno.build.os === "windows" ? "windows" : "linux";
}

/** Directory holding ONNX Runtime's native libraries for this platform. */
function runtimeDir(): string | null {
  try {
    const index = fileURLToPath(import.meta.resolve("onnxruntime-node"));
    const os = Deno.build.os === "windows" ? "win32" : Deno.build.os;
    const arch = Deno.build.arch === "aarch64" ? "arm64" : "x64";
    return join(dirname(index), "..", "bin", "napi-v6", os, arch);
  } catch (e) {
    // onnxruntime-node resolves to no local file (not installed): no directory to look in.
    if (e instanceof TypeError) return null;
    throw e;
  }
}

/** Whether the CUDA provider's library was installed next to ONNX Runtime's. */
export function cudaInstalled(): boolean {
  const dir = runtimeDir();
  if (!dir) return false;
  const name = Deno.build.os === "windows"
    ? "onnxruntime_providers_cuda.dll"
    : "libonnxruntime_providers_cuda.so";
  try {
    return Deno.statSync(join(dir, name)).isFile;
  } catch (e) {
    // The provider's library is absent unless its install script put it there.
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** What decides a platform's default order. */
export interface DefaultProviderFacts {
  platform: Platform;
  cudaInstalled: boolean;
  /** The WebGPU adapter, or null. */
  adapter: AdapterInfo | null;
}

/**
 * The default provider order for the given facts (pure; see {@link defaultProviders}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(
 *   defaultProvidersFor({ platform: "darwin", cudaInstalled: false, adapter: null }),
 *   ["coreml", "cpu"],
 * );
 * ```
 */
export function defaultProvidersFor(facts: DefaultProviderFacts): ProviderName[] {
  const gpu = facts.adapter !== null && !isSoftwareAdapter(facts.adapter);
  const out: ProviderName[] = [];
  if (facts.platform !== "darwin" && facts.cudaInstalled) out.push("cuda");
  if (facts.platform === "darwin") out.push("coreml");
  if (facts.platform === "windows") out.push("dml");
  if (gpu) out.push("webgpu");
  out.push("cpu");
  return out;
}

/**
 * The default provider order on this machine.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const providers = await defaultProviders(); // e.g. ["cpu"] on a machine without a GPU
 * assert.equal(providers.at(-1), "cpu"); // the fallback of every order
 * ```
 */
export async function defaultProviders(): Promise<ProviderName[]> {
  return defaultProvidersFor({
    platform: currentPlatform(),
    cudaInstalled: cudaInstalled(),
    adapter: await webgpuAdapter(),
  });
}

/**
 * What onnxruntime-node is given for a provider name. CoreML is asked for an ML Program (the
 * model format current macOS runs on its GPU and Neural Engine); DirectML runs on the default
 * adapter; the others take their defaults.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(providerConfig("coreml"), { name: "coreml", coreMlFlags: 16 });
 * assert.equal(providerConfig("cpu"), "cpu");
 * ```
 */
export function providerConfig(provider: string): string | { name: string; coreMlFlags?: number } {
  if (provider === "coreml") return { name: "coreml", coreMlFlags: 0x010 };
  return provider;
}

/** Where a provider can run at all, by the platforms its npm binaries carry it for. */
const PLATFORMS: Record<ProviderName, Platform[]> = {
  cpu: ["linux", "darwin", "windows"],
  webgpu: ["linux", "darwin", "windows"],
  cuda: ["linux", "windows"],
  tensorrt: ["linux", "windows"],
  coreml: ["darwin"],
  dml: ["windows"],
};

/**
 * Why a provider cannot run on a platform at all (null when it can be tried there).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(platformReason("coreml", "linux"), "CoreML runs on macOS only");
 * assert.equal(platformReason("cpu", "linux"), null);
 * ```
 */
export function platformReason(provider: ProviderName, platform: Platform): string | null {
  if (PLATFORMS[provider].includes(platform)) return null;
  const label = { coreml: "CoreML runs on macOS only", dml: "DirectML runs on Windows only" };
  return (label as Record<string, string>)[provider] ??
    `${provider} is not built for ${platform}`;
}

/** A provider failure told in latentforge's words, and whether it is the provider's own. */
export interface ProviderFailure {
  /** One short clause, e.g. "its library is not installed". */
  reason: string;
  /**
   * True when the provider cannot load at all (missing library, no device): later sessions
   * of the same process skip it without trying again.
   */
  unavailable: boolean;
}

/**
 * Translates ONNX Runtime's error text about a provider into one short clause.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const failure = describeProviderFailure(
 *   "cuda",
 *   "OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library",
 * );
 * assert.equal(failure.unavailable, true);
 * assert.match(failure.reason, /^its library is not installed/);
 * ```
 */
export function describeProviderFailure(provider: string, message: string): ProviderFailure {
  const text = message.replace(/\s+/g, " ");
  if (/Failed to load (shared )?library|cannot open shared object|LoadLibrary failed/i.test(text)) {
    const hint = provider === "cuda" || provider === "tensorrt"
      ? "; onnxruntime-node's install script adds it with --onnxruntime-node-install=cuda12"
      : "";
    return { reason: `its library is not installed${hint}`, unavailable: true };
  }
  if (/backend not found|not (yet )?supported|unsupported execution provider/i.test(text)) {
    return { reason: "this onnxruntime-node build does not include it", unavailable: true };
  }
  if (/no CUDA-capable device|CUDA driver version|cudaErrorNoDevice|CUDA failure 100/i.test(text)) {
    return { reason: "no CUDA device found", unavailable: true };
  }
  if (/adapter|Dawn|WebGPU device|Vulkan|requestAdapter/i.test(text)) {
    return { reason: "no usable WebGPU adapter", unavailable: true };
  }
  const kernel = /Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'/
    .exec(text);
  if (kernel) {
    return {
      reason: `it has no kernel for the ${kernel[1]} node "${kernel[3]}" (opset ${kernel[2]})`,
      unavailable: false,
    };
  }
  const status = /\[ONNXRuntimeError\] : \d+ : (\w+)/.exec(text)?.[1];
  return {
    reason: `ONNX Runtime could not open the model${status ? ` (${status})` : ""}`,
    unavailable: false,
  };
}

/**
 * Which execution providers load on this machine, the default order latentforge would use, and,
 * for the WebGPU provider, where ONNX Runtime placed each op of a VAE's three graphs (encoder,
 * decoder, loss-and-gradient graph): op types on WebGPU and op types it ran on the CPU (ops the
 * WebGPU provider has no kernel for, and the shape arithmetic ONNX Runtime keeps on the CPU on
 * purpose). Placement is read from ONNX Runtime's own profile of one run. Each graph's first run
 * (shader compilation included) and a second run are timed on WebGPU and on the CPU.
 *
 * usage: deno run -A bench/providers.ts [--size 64] [--model-dir DIR] [--threads N]
 *   DIR holds vae_encoder.onnx and vae_decoder.onnx (default: a generated SD-shaped VAE with
 *   4 latent channels; ../shared/models/vae-small-bsds is a trained one).
 *
 * @module
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { buildLossAndGradient } from "../lib/onnx/loss_gradient.ts";
import { openSession } from "../lib/onnx/session.ts";
import { SessionError } from "../lib/onnx/errors.ts";
import {
  defaultProviders,
  isSoftwareAdapter,
  PROVIDER_NAMES,
  webgpuAdapter,
} from "../lib/onnx/providers.ts";
import { GraphBuilder } from "../lib/onnx/graph_builder.ts";
import { DataType, sizeOf } from "../lib/onnx/tensor.ts";
import { writeVae } from "../tests/fixtures/vae.ts";

function flag(name: string, fallback: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 && Deno.args[i + 1] ? Deno.args[i + 1] : fallback;
}

const size = Number(flag("size", "64"));
const threads = Number(flag("threads", String(navigator.hardwareConcurrency)));
const dir = await Deno.makeTempDir({ prefix: "latentforge-bench-providers-" });
// Shaders compiled by Mesa stay in this run's directory (set before any Vulkan driver loads).
Deno.env.set("MESA_SHADER_CACHE_DIR", join(dir, "mesa-shader-cache"));

try {
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  console.log(
    `onnxruntime-node ${ort.env.versions.common}, ${Deno.build.os} ${Deno.build.arch}, ` +
      `${threads} threads, load average ${load}`,
  );
  console.log("\n== Providers");
  const tiny = new GraphBuilder();
  const x = tiny.input("x", DataType.FLOAT, [1, 4]);
  tiny.output(tiny.node("Relu", [x]), DataType.FLOAT, [1, 4]);
  for (const provider of PROVIDER_NAMES) {
    try {
      const { session } = await openSession(tiny.toBytes(), {
        providers: [provider],
        log: () => {},
      });
      await session.release();
      console.log(`  ${provider.padEnd(9)} loads`);
    } catch (e) {
      console.log(
        `  ${provider.padEnd(9)} unavailable: ${
          (e as Error).message.replace(/^.*tried [a-z]+ \((.*)\)$/, "$1")
        }`,
      );
    }
  }
  const adapter = await webgpuAdapter();
  console.log(
    `  WebGPU adapter: ${
      adapter
        ? `${adapter.description}${isSoftwareAdapter(adapter) ? " (a CPU rasterizer)" : ""}`
        : "none"
    }`,
  );
  console.log(`  default order here: ${(await defaultProviders()).join(", ")}`);

  const modelDir = flag("model-dir", "");
  const vae = modelDir
    ? { encoder: join(modelDir, "vae_encoder.onnx"), decoder: join(modelDir, "vae_decoder.onnx") }
    : await writeVae(join(dir, "vae"), { family: "sd", latentChannels: 4, factor: 8 });
  const encoderSession = await ort.InferenceSession.create(vae.encoder);
  const decoderSession = await ort.InferenceSession.create(vae.decoder);
  const encMeta = encoderSession.outputMetadata[0];
  const decMeta = decoderSession.inputMetadata[0];
  const encoderInput = encoderSession.inputNames[0];
  const decoderInput = decoderSession.inputNames[0];
  await encoderSession.release();
  await decoderSession.release();
  const channels = decMeta.isTensor && typeof decMeta.shape[1] === "number" ? decMeta.shape[1] : 4;
  const factor = 8;
  const latent = [1, channels, size / factor, size / factor];
  const image = [1, 3, size, size];
  const built = await buildLossAndGradient(vae.decoder, {
    batch: 1,
    latentShape: latent.slice(1),
  });
  const graphs: { name: string; model: string | Uint8Array; feeds: Record<string, number[]> }[] = [
    { name: "encoder", model: vae.encoder, feeds: { [encoderInput]: image } },
    { name: "decoder", model: vae.decoder, feeds: { [decoderInput]: latent } },
    {
      name: "loss-and-gradient graph",
      model: built.bytes,
      feeds: { [built.inputs.latent]: built.latentDims, [built.inputs.target]: built.imageDims },
    },
  ];
  console.log(
    `\n== WebGPU placement: ${modelDir || "generated SD-shaped VAE"}, ${channels} latent ` +
      `channels, image ${size}×${size}, batch 1 (encoder output ${
        encMeta.isTensor ? `[${encMeta.shape.join(", ")}]` : "?"
      })`,
  );
  if (!adapter) console.log("  no WebGPU adapter: nothing to place");
  for (const g of graphs) {
    if (!adapter) break;
    const cpu = await timedRuns(g.model, g.feeds, "cpu", null);
    const gpu = await timedRuns(g.model, g.feeds, "webgpu", join(dir, `profile-${g.name}`));
    if (!gpu) {
      console.log(`  ${g.name}: the WebGPU provider could not run it`);
      continue;
    }
    const onGpu = [...gpu.placement].filter(([, p]) => p.webgpu > 0).map(([op, p]) =>
      `${op}${p.webgpu > 1 ? ` ×${p.webgpu}` : ""}`
    );
    const onCpu = [...gpu.placement].filter(([, p]) => p.cpu > 0).map(([op, p]) =>
      `${op}${p.cpu > 1 ? ` ×${p.cpu}` : ""}`
    );
    console.log(`  ${g.name}:`);
    console.log(`    on WebGPU: ${onGpu.join(", ") || "nothing"}`);
    console.log(`    on the CPU: ${onCpu.join(", ") || "nothing"}`);
    console.log(
      `    first run ${fmt(gpu.first)} s (shader compilation included), second ${
        fmt(gpu.second)
      } s on WebGPU; ${fmt(cpu!.second)} s on the CPU (${
        fmt(gpu.second / cpu!.second, 1)
      }× the CPU's time)`,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

function fmt(x: number, digits = 3): string {
  return x.toFixed(digits);
}

/** Runs a graph twice on one provider; with a profile prefix, reads where each op ran. */
async function timedRuns(
  model: string | Uint8Array,
  feeds: Record<string, number[]>,
  provider: string,
  profilePrefix: string | null,
): Promise<
  { first: number; second: number; placement: Map<string, { webgpu: number; cpu: number }> } | null
> {
  let opened;
  try {
    opened = await openSession(model, {
      providers: [provider],
      intraOpThreads: threads,
      log: () => {},
      extra: profilePrefix ? { enableProfiling: true, profileFilePrefix: profilePrefix } : {},
    });
  } catch (error) {
    // The provider is not available here: the comparison says so instead of timing it.
    if (error instanceof SessionError) return null;
    throw error;
  }
  const { session } = opened;
  const tensors = Object.fromEntries(
    Object.entries(feeds).map(([name, dims]) => [
      name,
      new ort.Tensor("float32", new Float32Array(sizeOf(dims)).fill(0.1), dims),
    ]),
  );
  let t = performance.now();
  await session.run(tensors);
  const first = (performance.now() - t) / 1000;
  t = performance.now();
  await session.run(tensors);
  const second = (performance.now() - t) / 1000;
  const placement = new Map<string, { webgpu: number; cpu: number }>();
  if (profilePrefix) {
    session.endProfiling();
    const folder = profilePrefix.slice(0, profilePrefix.lastIndexOf("/"));
    const base = profilePrefix.slice(profilePrefix.lastIndexOf("/") + 1);
    const file = [...Deno.readDirSync(folder)].find((e) => e.name.startsWith(base));
    if (file) {
      const events = JSON.parse(Deno.readTextFileSync(join(folder, file.name))) as {
        cat: string;
        name: string;
        args?: { op_name?: string; provider?: string };
      }[];
      // One kernel event per node and run: count nodes of the first run only.
      const seen = new Set<string>();
      for (const e of events) {
        if (e.cat !== "Node" || !e.name.endsWith("_kernel_time") || seen.has(e.name)) continue;
        seen.add(e.name);
        const op = e.args?.op_name ?? "?";
        const p = placement.get(op) ?? { webgpu: 0, cpu: 0 };
        if (e.args?.provider === "CPUExecutionProvider") p.cpu++;
        else p.webgpu++;
        placement.set(op, p);
      }
    }
  }
  await session.release();
  return { first, second, placement };
}

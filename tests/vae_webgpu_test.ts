/**
 * WebGPU for real, without a GPU: on Mesa's llvmpipe Vulkan driver the WebGPU provider of the
 * npm onnxruntime-node runs, so a 32-channel VAE's encode, its loss-and-gradient graph (checked
 * by finite differences) and a short optimize run on `webgpu` and are compared with `cpu`.
 * Sizes stay tiny: a CPU rasterizer compiles every shader with LLVM, which dominates the time.
 * Each provider runs in a process of its own, with Mesa's shader cache in a temp directory.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { partIf, requirement } from "./fixtures/skip.ts";
import { syntheticImage } from "./fixtures/synthetic_images.ts";
import { writeVae } from "./fixtures/vae.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const SIDE = 64;

interface ProviderRun {
  provider: string;
  gradientProvider: string;
  geometry: Record<string, number>;
  latent: number[];
  loss: number;
  gradient: number[];
  analytic: number;
  numeric: number;
  optimized: number[];
  lossInitial: number;
  lossFinal: number;
  seconds: Record<string, number>;
}

function maxAbs(xs: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < xs.length; i++) m = Math.max(m, Math.abs(xs[i]));
  return m;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assertEquals(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Runs tests/fixtures/provider_run.ts with one provider, in its own process. */
async function runProvider(
  provider: string,
  { dir, encoder, decoder, image }: {
    dir: string;
    encoder: string;
    decoder: string;
    image: string;
  },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(REPO, "tests/fixtures/provider_run.ts"),
      provider,
      encoder,
      decoder,
      image,
      String(SIDE),
    ],
    cwd: REPO,
    env: {
      NO_COLOR: "1",
      MESA_SHADER_CACHE_DIR: join(dir, "mesa-shader-cache"),
      XDG_RUNTIME_DIR: join(dir, "xdg"),
    },
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

const TEST = "webgpu: encode, the gradient graph and optimize agree with the CPU provider";

Deno.test(TEST, async () => {
  const dir = await Deno.makeTempDir({ prefix: "latentforge-webgpu-" });
  try {
    const vae = await writeVae(join(dir, "vae"), {
      family: "patch",
      latentChannels: 32,
      factor: 8,
    });
    const image = join(dir, "image.png");
    await Deno.writeFile(image, (await syntheticImage(1, { width: SIDE, height: SIDE })).png);
    await Deno.mkdir(join(dir, "xdg"), { mode: 0o700 });
    const run = (provider: string) =>
      runProvider(provider, { dir, encoder: vae.encoder, decoder: vae.decoder, image });
    const cpuRun = await run("cpu");
    assertEquals(cpuRun.code, 0, cpuRun.stderr);
    const gpuRun = await run("webgpu");
    const adapter = requirement(
      "missing-dependency",
      !(gpuRun.code !== 0 && gpuRun.stderr.includes("tried webgpu (")),
      "ONNX Runtime's WebGPU provider finds no adapter (Debian: mesa-vulkan-drivers from " +
        "bookworm-backports, Mesa 25, whose llvmpipe runs Vulkan on the CPU)",
    );
    if (!partIf(adapter, TEST, "the WebGPU run")) return;
    assertEquals(gpuRun.code, 0, gpuRun.stderr);
    const cpu = JSON.parse(cpuRun.stdout) as ProviderRun;
    const gpu = JSON.parse(gpuRun.stdout) as ProviderRun;
    assertEquals([cpu.provider, cpu.gradientProvider], ["cpu", "cpu"]);
    assertEquals([gpu.provider, gpu.gradientProvider], ["webgpu", "webgpu"]);
    assertEquals(gpu.geometry, cpu.geometry);
    assertEquals(gpu.geometry.channels, 32);
    console.log(
      `webgpu seconds ${JSON.stringify(gpu.seconds)}; cpu seconds ${JSON.stringify(cpu.seconds)}`,
    );

    // encode: the stored latent.
    const latentError = maxDiff(gpu.latent, cpu.latent) / maxAbs(cpu.latent);
    assert(latentError < 1e-5, `latent differs by ${latentError} (relative)`);
    // The loss-and-gradient graph at that latent, and its gradient against finite differences.
    assert(Math.abs(gpu.loss - cpu.loss) <= 1e-5 * cpu.loss, `loss ${gpu.loss} vs ${cpu.loss}`);
    const gradError = maxDiff(gpu.gradient, cpu.gradient) / maxAbs(cpu.gradient);
    assert(gradError < 1e-4, `gradient differs by ${gradError} (relative)`);
    for (const r of [cpu, gpu]) {
      const rel = Math.abs(r.analytic - r.numeric) / Math.max(Math.abs(r.analytic), 1e-12);
      assert(rel < 5e-3, `${r.provider}: gradient ${r.analytic} vs finite difference ${r.numeric}`);
      // A short optimize lowers the loss.
      assert(r.lossFinal < r.lossInitial, `${r.provider}: ${r.lossInitial} → ${r.lossFinal}`);
    }
    const optError = maxDiff(gpu.optimized, cpu.optimized) / maxAbs(cpu.optimized);
    assert(optError < 1e-3, `optimized latents differ by ${optError} (relative)`);
    assert(
      Math.abs(gpu.lossFinal - cpu.lossFinal) <= 1e-4 * cpu.lossFinal,
      `final loss ${gpu.lossFinal} vs ${cpu.lossFinal}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Execution providers: the default order per platform (never a CPU rasterizer's WebGPU), one
 * short latentforge line per provider that cannot be used — ONNX Runtime's own text kept only as
 * the line's detail and never printed — a provider that cannot load remembered for the rest of
 * the process, a list with no usable entry failing with what was tried, the provider used
 * recorded with every result. CUDA finds no library here, so its fallback is real; CoreML and
 * DirectML run only on their platforms (platform skips elsewhere).
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { assert, assertEquals, assertMatch } from "./fixtures/assert.ts";
import { requirement, testIf } from "./fixtures/skip.ts";
import { writeVae } from "./fixtures/vae.ts";
import { VaeProject } from "./fixtures/vae_project.ts";
import {
  defaultProvidersFor,
  describeProviderFailure,
  isSoftwareAdapter,
  platformReason,
  providerConfig,
} from "../lib/onnx/providers.ts";
import { forgetUnavailableProviders, openSession } from "../lib/onnx/session.ts";
import { GraphBuilder } from "../lib/onnx/graph_builder.ts";
import { DataType } from "../lib/onnx/tensor.ts";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const LLVMPIPE = { description: "llvmpipe (LLVM 15.0.6, 256 bits)", isFallbackAdapter: true };
const GPU = { description: "NVIDIA GeForce RTX 4090", isFallbackAdapter: false };

Deno.test("providers: the default order per platform, with WebGPU only on a hardware adapter", () => {
  const cases: [Parameters<typeof defaultProvidersFor>[0], string[]][] = [
    [{ platform: "linux", cudaInstalled: true, adapter: GPU }, ["cuda", "webgpu", "cpu"]],
    [{ platform: "linux", cudaInstalled: false, adapter: GPU }, ["webgpu", "cpu"]],
    [{ platform: "linux", cudaInstalled: true, adapter: LLVMPIPE }, ["cuda", "cpu"]],
    [{ platform: "linux", cudaInstalled: false, adapter: LLVMPIPE }, ["cpu"]],
    [{ platform: "linux", cudaInstalled: false, adapter: null }, ["cpu"]],
    [{ platform: "darwin", cudaInstalled: false, adapter: { description: "Apple M2" } }, [
      "coreml",
      "webgpu",
      "cpu",
    ]],
    [{ platform: "windows", cudaInstalled: false, adapter: GPU }, ["dml", "webgpu", "cpu"]],
    [{
      platform: "windows",
      cudaInstalled: false,
      adapter: {
        description: "Microsoft Basic Render Driver",
      },
    }, ["dml", "cpu"]],
  ];
  for (const [facts, expected] of cases) {
    assertEquals(defaultProvidersFor(facts), expected, JSON.stringify(facts));
  }
  for (const name of ["SwiftShader Device (Subzero)", "lavapipe", "llvmpipe (LLVM 19)"]) {
    assert(isSoftwareAdapter({ description: name }), name);
  }
  assert(!isSoftwareAdapter({ description: "AMD Radeon RX 7900 XTX" }));
});

Deno.test("providers: CoreML and DirectML are configured for their platforms and refused elsewhere", () => {
  assertEquals(providerConfig("coreml"), { name: "coreml", coreMlFlags: 0x010 });
  assertEquals(providerConfig("dml"), "dml");
  assertEquals(platformReason("coreml", "linux"), "CoreML runs on macOS only");
  assertEquals(platformReason("coreml", "darwin"), null);
  assertEquals(platformReason("dml", "darwin"), "DirectML runs on Windows only");
  assertEquals(platformReason("dml", "windows"), null);
  assertEquals(platformReason("cuda", "darwin"), "cuda is not built for darwin");
  assertEquals(platformReason("webgpu", "linux"), null);
  // ONNX Runtime's texts become one short clause; its own words stay in the detail.
  const missing = describeProviderFailure(
    "cuda",
    "OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library",
  );
  assertEquals(missing.unavailable, true);
  assertMatch(missing.reason, /^its library is not installed; .*cuda12$/);
  assertEquals(
    describeProviderFailure("cuda", "CUDA failure 100: no CUDA-capable device is detected"),
    { reason: "no CUDA device found", unavailable: true },
  );
  assertEquals(
    describeProviderFailure(
      "cpu",
      "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Foo(1) node with name 'foo'",
    ),
    { reason: `it has no kernel for the Foo node "foo" (opset 1)`, unavailable: false },
  );
});

Deno.test("providers: fallbacks are one short line each, remembered, and ONNX Runtime stays quiet", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        join(REPO, "tests/fixtures/session_probe.ts"),
        JSON.stringify(["cuda", "tensorrt", "coreml", "dml", "cpu"]),
        JSON.stringify(["cuda", "cpu"]),
        JSON.stringify(["cuda", "coreml"]),
        "null",
      ],
      cwd: REPO,
      env: { NO_COLOR: "1", MESA_SHADER_CACHE_DIR: dir, XDG_RUNTIME_DIR: dir },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    // ONNX Runtime prints provider failures itself unless told not to: nothing of it here.
    assert(!/onnxruntime|Failed to load|\[E:/.test(stderr), `stderr: ${stderr}`);
    const probe = JSON.parse(new TextDecoder().decode(out.stdout));
    const [all, again, none, defaults] = probe.opens;
    assertEquals(all.provider, "cpu");
    assertEquals(
      all.lines.map((l: { line: string }) => l.line.replace(/ \(.*\)/, " (…)")),
      [
        "provider cuda unavailable (…), falling back to tensorrt",
        "provider tensorrt unavailable (…), falling back to cpu",
        "provider coreml unavailable (…), falling back to cpu",
        "provider dml unavailable (…), falling back to cpu",
      ],
    );
    assertMatch(all.lines[0].line, /\(its library is not installed; /);
    assertMatch(all.lines[0].detail, /Failed to load shared library/);
    assertEquals(all.lines[2].line.includes("CoreML runs on macOS only"), true);
    // Later sessions of the process skip what could not load, without a word.
    assertEquals(again, { providers: ["cuda", "cpu"], provider: "cpu", lines: [] });
    assertEquals(
      none.error,
      "SessionError: no execution provider could open the model; tried cuda (its library is " +
        "not installed; onnxruntime-node's install script adds it with " +
        "--onnxruntime-node-install=cuda12), coreml (CoreML runs on macOS only)",
    );
    assertEquals(defaults.provider, "cpu");
    // This machine: no CUDA library; WebGPU only on a CPU rasterizer (or none) — CPU alone.
    if (probe.adapter && isSoftwareAdapter(probe.adapter)) {
      assertEquals(probe.defaults, ["cpu"]);
      console.log(`WebGPU adapter here: ${probe.adapter.description} (kept out of the default)`);
    }
    assert(!probe.defaults.includes("webgpu") || !isSoftwareAdapter(probe.adapter));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("providers: a run on [cuda, cpu] says so once and records cpu with every result", async () => {
  forgetUnavailableProviders();
  const p = await VaeProject.create(3, 32);
  try {
    const vae = await writeVae(join(p.dir, "vae"), { family: "sd", latentChannels: 4, factor: 8 });
    const run = await p.run({
      preprocess: { size: 32 },
      model: {
        encoder: { path: vae.encoder },
        decoder: { path: vae.decoder },
        scaling_factor: 1,
        providers: ["cuda", "cpu"],
        threads: 1,
      },
      optimize: { max_steps: 2, batch_size: 2 },
      package: { samples: 1 },
    });
    assertEquals(run.exitCode, 0);
    const fallbacks = run.logs.filter((l) => l.message.includes("falling back"));
    assertEquals(fallbacks.length, 1, JSON.stringify(fallbacks));
    assertMatch(fallbacks[0].message, /^provider cuda unavailable \(its library is not installed/);
    assertMatch(fallbacks[0].detail ?? "", /Failed to load shared library/);
    const metrics = (await Deno.readTextFile(join(p.out, "train", "metrics.csv"))).trim()
      .split("\n");
    assertEquals(metrics[0].split(",").at(-1), "provider");
    assertEquals(metrics.slice(1).map((l) => l.split(",").at(-1)), ["cpu", "cpu", "cpu"]);
    const encodeLines = run.logs.filter((l) => l.task === "encode").map((l) => l.message);
    assert(encodeLines.some((l) => /running on cpu$/.test(l)), encodeLines.join("\n"));
  } finally {
    await p.cleanup();
  }
});

testIf(requirement("platform", Deno.build.os === "darwin", "CoreML runs on macOS only"), {
  name: "providers: CoreML runs a model on macOS",
  fn: async () => await runsOn("coreml"),
});

testIf(requirement("platform", Deno.build.os === "windows", "DirectML runs on Windows only"), {
  name: "providers: DirectML runs a model on Windows",
  fn: async () => await runsOn("dml"),
});

/** Opens a small model on `provider` alone and checks its output. */
async function runsOn(provider: string): Promise<void> {
  const b = new GraphBuilder();
  const x = b.input("x", DataType.FLOAT, [1, 4]);
  b.output(b.node("Relu", [x]), DataType.FLOAT, [1, 4]);
  const { session, provider: used } = await openSession(b.toBytes(), { providers: [provider] });
  assertEquals(used, provider);
  const out = await session.run({
    x: new ort.Tensor("float32", Float32Array.of(-1, 2, -3, 4), [1, 4]),
  });
  assertEquals([...(out[session.outputNames[0]].data as Float32Array)], [0, 2, 0, 4]);
  await session.release();
}

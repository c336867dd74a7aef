/**
 * `deno task bench NAME [args…]`: runs one benchmark.
 *
 * @module
 */
const benches: Record<string, string> = {
  noop: "./noop.ts",
  plan: "./plan.ts",
  download: "./download.ts",
  adopt: "./adopt.ts",
  spec: "./spec_ingest.ts",
  grad: "./grad.ts",
  preprocess: "./preprocess.ts",
  optimize: "./optimize.ts",
  slurm: "./slurm.ts",
  "slurm-scale": "./slurm_scale.ts",
  soak: "./soak.ts",
  package: "./package.ts",
  providers: "./providers.ts",
  throughput: "./throughput.ts",
  list: "./list.ts",
  cache: "./cache.ts",
  encode: "./encode.ts",
  quality: "./quality.ts",
  loader: "./loader.ts",
};

const [name, ...rest] = Deno.args;
if (!name || !(name in benches)) {
  console.error(
    `usage: deno task bench NAME [args…]; NAME is one of: ${Object.keys(benches).join(", ")}`,
  );
  Deno.exit(2);
}
const out = await new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--allow-all",
    "--unstable-kv",
    "--unstable-cron",
    new URL(benches[name], import.meta.url).pathname,
    ...rest,
  ],
  // ONNX Runtime's telemetry would leave a log per process in TMPDIR.
  env: { ORT_DISABLE_TELEMETRY: "1" },
  stdout: "inherit",
  stderr: "inherit",
}).output();
Deno.exit(out.code);

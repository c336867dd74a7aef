// Encoding reaches no gradient code: the modules tasks/encode.ts imports at run time (type-only
// imports aside) hold neither the gradient graph nor what builds, fits or estimates it, while
// tasks/optimize.ts reaches all of it.
const ROOT = new URL("../", import.meta.url);

/** Local modules a task file reaches through imports that are not type-only. */
async function runtimeClosure(task: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", task],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`deno info ${task}: ${new TextDecoder().decode(out.stderr)}`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: { specifier: string; dependencies?: { code?: { specifier: string } }[] }[];
  };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const stack = [...info.roots];
  while (stack.length > 0) {
    const s = stack.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    // A type-only import is listed under "type", never "code".
    for (const d of bySpecifier.get(s)?.dependencies ?? []) {
      if (d.code) stack.push(d.code.specifier);
    }
  }
  return [...seen].filter((s) => s.startsWith(ROOT.href)).map((s) => s.slice(ROOT.href.length));
}

const GRADIENT_ONLY = [
  /^lib\/onnx\/vjp/,
  /^lib\/onnx\/loss_gradient\.ts$/,
  /^lib\/onnx\/recompute\.ts$/,
  /^lib\/onnx\/memory_estimate\.ts$/,
  /^lib\/onnx\/batch_fit\.ts$/,
  /^lib\/model\/evaluators\.ts$/,
];

Deno.test("encode's run-time imports reach no gradient code; optimize's reach all of it", async () => {
  const encode = await runtimeClosure("tasks/encode.ts");
  const reached = encode.filter((m) => GRADIENT_ONLY.some((p) => p.test(m)));
  if (!encode.includes("lib/model/vae.ts") || reached.length > 0) {
    throw new Error(`tasks/encode.ts reaches [${reached.join(", ")}] (of ${encode.length})`);
  }
  const optimize = await runtimeClosure("tasks/optimize.ts");
  const missing = GRADIENT_ONLY.filter((p) => !optimize.some((m) => p.test(m)));
  if (missing.length > 0) {
    throw new Error(`tasks/optimize.ts reaches nothing matching [${missing.join(", ")}]`);
  }
});

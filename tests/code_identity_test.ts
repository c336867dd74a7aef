/**
 * Code identity: a module is hashed by what it says, not how it is laid out (a table of
 * token-level cases, and every module a task's key holds formatted badly and back by
 * `deno fmt`); a task's modules are what its file imports at run time, Worker scripts included
 * and type-only imports not (checked against `deno info`; code_identity_run_test.ts checks them
 * against the modules a real run of each task loads); an unchanged tree is not parsed again.
 */
import { join } from "node:path";
import { assert, assertEquals } from "./fixtures/assert.ts";
import { tokenize } from "../lib/dag/module_tokens.ts";
import { normalizedTokens, tokenHash } from "../lib/dag/module_hash.ts";
import { runtimeReferences } from "../lib/dag/module_imports.ts";
import { CodeReader, ENGINE_FOLDERS, type TaskCode } from "../lib/dag/code_identity.ts";
import { pipeline } from "../pipeline.ts";
import { REPO } from "./fixtures/project.ts";
import { ToyProject } from "./fixtures/toy_harness.ts";
import { openRecords } from "../lib/store/records.ts";
import type { Pipeline } from "../lib/dag/task.ts";

const hash = (source: string) => tokenHash(tokenize(source, "case.ts"));

/** Pairs of sources, and whether they must hash alike. */
const CASES: [string, string, boolean, string][] = [
  ["let a = 1; // one\n", "let a = 1\n", true, "a comment and a final semicolon"],
  ["/* block */ f(a)", "f(a)", true, "a block comment"],
  ["f('a', \"b\")", 'f("a", "b")', true, "quote style"],
  ["f('it\\'s')", 'f("it\'s")', true, "an escaped quote"],
  ['f("\\x41\\u0042\\u{43}")', 'f("ABC")', true, "escapes by their cooked value"],
  ["f(a, b,)", "f(a, b)", true, "a trailing comma in a call"],
  ["[\n  1,\n  2,\n]", "[1, 2]", true, "a trailing comma in an array over lines"],
  ["({ a: 1, })", "({ a: 1 })", true, "a trailing comma in an object"],
  ["[a,,]", "[a,]", false, "an array hole is no trailing comma"],
  ["({ 'a': 1, \"b-c\": 2 })", '({ a: 1, "b-c": 2 })', true, "a quoted key that needs none"],
  ["x ? 'a' : b", "x ? a : b", false, "a string in a conditional is no key"],
  ["a;\nb;\n", "a\nb\n", true, "semicolons at line ends"],
  ["a; b", "a\nb", true, "a semicolon between statements on one line"],
  ["a;\n(b)", "a\n(b)", false, "a line starting with ( continues the previous one"],
  ["a;\n[b]", "a\n[b]", false, "a line starting with ["],
  ["a;\n`b`", "a\n`b`", false, "a line starting with a template"],
  ["a;\n+b", "a\n+b", false, "a line starting with +"],
  ["a;\n-b", "a\n-b", false, "a line starting with -"],
  ["a;\n/b/.test(c)", "a\n/b/.test(c)", false, "a line starting with a regular expression"],
  ["a;;\n(b)", "a\n(b)", false, "a second semicolon before ( still separates"],
  ["{\n  ;(a)\n}", "{\n  (a)\n}", true, "an empty statement at a block's start"],
  ["for (let i = 0;\n i < n;\n i++) f(i)", "for (let i = 0; i < n; i++) f(i)", true, "a for head"],
  ["for (;;) f()", "for () f()", false, "the semicolons of a for head are kept"],
  ["xs.map((x) => x)", "xs.map(x => x)", true, "a lone arrow parameter in parentheses"],
  ["xs.map((\n  x,\n) => x)", "xs.map(x => x)", true, "a lone arrow parameter, comma after"],
  ["xs.map((x, y) => x)", "xs.map(x, y => x)", false, "two arrow parameters"],
  ['type A =\n  | "x"\n  | "y";', 'type A = "x" | "y"', true, "a leading | of a union type"],
  ["type B = Array<Array<number>>", "type B = Array<Array<number>\n>", true, ">> of generics"],
  ["const eps = 1e-8", "const eps = 1e-3", false, "a constant"],
  ["const eps = 1e-8", "const eps = 1e+8", false, "an exponent's sign"],
  ["const x = a / b / c", "const x = a/b/c", true, "division"],
  ["const r = /a+b/g", "const r = /a+b/", false, "a regular expression's flags"],
  ["return /[/]/.test(s)", "return /[/]/.test(s) ", true, "a slash in a character class"],
  ["`a${ { b: 1 }.b }c`", "`a${{ b: 1 }.b}c`", true, "braces inside ${} of a template"],
  ["`a ${b} c`", "`a ${b}  c`", false, "a template's text"],
  ["String.raw`\\d`", "String.raw`d`", false, "a tagged template reads its raw text"],
  ["x = 0x1e-5", "x = 0x1e - 5", true, "a hexadecimal number is not an exponent"],
];

Deno.test("module hashes: comments and formatting change nothing, meaning does (a table of cases)", () => {
  const wrong: string[] = [];
  for (const [a, b, same, what] of CASES) {
    if ((hash(a) === hash(b)) !== same) {
      const ta = normalizedTokens(tokenize(a, "a.ts")).join(" ");
      const tb = normalizedTokens(tokenize(b, "b.ts")).join(" ");
      wrong.push(`${what}: expected ${same ? "equal" : "different"} hashes (${ta} | ${tb})`);
    }
  }
  assertEquals(wrong, []);
});

Deno.test("run-time references: type-only imports are left out, Workers and import() kept", () => {
  const source = [
    'import type { A } from "./a.ts";',
    'import { type B, type C } from "./bc.ts";',
    'import d, { type E } from "./de.ts";',
    'import { type F, g } from "./fg.ts";',
    'import * as h from "./h.ts";',
    'import "./side.ts";',
    'export type { I } from "./i.ts";',
    'export { j, type K } from "./jk.ts";',
    'export * from "./all.ts";',
    "export { local };",
    'import type L from "./l.ts";',
    'const m = await import("./m.ts");',
    'const w = new URL("./worker.ts", import.meta.url);',
    'const n = import.meta.resolve("onnxruntime-node");',
    'const o = x.import("./not.ts");',
    'import config from "../deno.json" with { type: "json" };',
  ].join("\n");
  const refs = runtimeReferences(tokenize(source, "m.ts"), "m.ts");
  assertEquals(refs.map((r) => `${r.kind} ${r.specifier}`), [
    "import ./de.ts",
    "import ./fg.ts",
    "import ./h.ts",
    "import ./side.ts",
    "import ./jk.ts",
    "import ./all.ts",
    "import ./m.ts",
    "url ./worker.ts",
    "import onnxruntime-node",
    "import ../deno.json",
  ]);
  let error = "";
  try {
    runtimeReferences(tokenize("const m = await import(`./${name}.ts`);", "dyn.ts"), "dyn.ts");
  } catch (e) {
    error = (e as Error).message;
  }
  assert(error.startsWith("dyn.ts:1: import() of a computed specifier"), error);
});

/** Every module the tasks' keys hold, by absolute path. */
async function keyedModules(): Promise<string[]> {
  const reader = new CodeReader();
  const out = new Set<string>();
  for (const task of pipeline.tasks) {
    const code = await reader.read(task.source);
    for (const m of Object.keys(code.identity.modules)) if (m.endsWith(".ts")) out.add(m);
  }
  return [...out].sort();
}

async function fmt(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--no-config", "--quiet", ...args, dir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
}

Deno.test("every keyed module, formatted badly and formatted back by deno fmt, keeps its hash", async () => {
  const modules = await keyedModules();
  assert(modules.length > 100, `only ${modules.length} modules`);
  const dir = await Deno.makeTempDir({ prefix: "latentforge-fmt-" });
  try {
    for (const m of modules) {
      await Deno.mkdir(join(dir, m, ".."), { recursive: true });
      const text = await Deno.readTextFile(join(REPO, m));
      // Comments where there were none, then the layout another project would choose.
      await Deno.writeTextFile(join(dir, m), `/* added */\n${text}\n// added too\n`);
    }
    const hashes = async (root: string) =>
      await Promise.all(
        modules.map(async (m) => hash(await Deno.readTextFile(join(root, m)))),
      );
    const original = await hashes(REPO);
    await fmt(dir, [
      "--line-width=200",
      "--indent-width=4",
      "--use-tabs",
      "--single-quote",
      "--no-semicolons",
    ]);
    const badly = await hashes(dir);
    const changed = modules.filter((m) =>
      Deno.readTextFileSync(join(dir, m)) !==
        Deno.readTextFileSync(join(REPO, m))
    );
    assert(changed.length === modules.length, `${modules.length - changed.length} unchanged`);
    await fmt(dir, ["--line-width=100"]);
    const back = await hashes(dir);
    const differ = (hs: string[]) => modules.filter((_, i) => hs[i] !== original[i]);
    assertEquals(differ(badly), [], "hashes after formatting badly");
    assertEquals(differ(back), [], "hashes after formatting back");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The local modules `deno info` says a file reaches by code imports, not entering the engine. */
async function denoInfoClosure(file: string): Promise<{ modules: string[]; npm: string[] }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", file],
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: { specifier: string; dependencies?: { code?: { specifier: string } }[] }[];
    redirects: Record<string, string>;
  };
  const root = new URL(`file://${REPO}`).href;
  const engine = ENGINE_FOLDERS.map((f) => `${root}lib/${f}/`);
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const stack = [...info.roots];
  while (stack.length > 0) {
    const popped = stack.pop()!;
    const s = info.redirects[popped] ?? popped;
    if (seen.has(s)) continue;
    seen.add(s);
    if (engine.some((e) => s.startsWith(e))) continue;
    for (const d of bySpecifier.get(s)?.dependencies ?? []) {
      if (d.code) stack.push(d.code.specifier);
    }
  }
  const local = [...seen].filter((s) => s.startsWith(root) && !engine.some((e) => s.startsWith(e)));
  const npm = [...seen].filter((s) => s.startsWith("npm:/"));
  return {
    modules: local.map((s) => s.slice(root.length)).sort(),
    npm: npm.map((s) =>
      s.slice("npm:/".length).replace(/^(@?[^@/]+(?:\/[^@/]+)?)@([^/]+).*$/, "$1")
    )
      .sort(),
  };
}

/** Modules the code names by `new URL("…", import.meta.url)`: loaded at run time only. */
const RUN_TIME_ONLY = ["lib/net/hash_worker.ts"];

Deno.test("each task's modules are what deno info says its file imports, plus its Worker scripts", async () => {
  const reader = new CodeReader();
  const problems: string[] = [];
  for (const task of pipeline.tasks) {
    const code: TaskCode = await reader.read(task.source);
    const file = new URL(task.source).pathname.slice(REPO.length);
    const info = await denoInfoClosure(file);
    const mine = Object.keys(code.identity.modules);
    const missing = info.modules.filter((m) => !mine.includes(m));
    const extra = mine.filter((m) => !info.modules.includes(m) && !RUN_TIME_ONLY.includes(m));
    if (missing.length) problems.push(`${task.name} lacks ${missing.join(", ")}`);
    if (extra.length) problems.push(`${task.name} has ${extra.join(", ")} that it never loads`);
    const packages = new Set(Object.keys(code.identity.npm));
    const npmMissing = info.npm.filter((p) => !packages.has(p));
    if (npmMissing.length) problems.push(`${task.name} lacks npm ${npmMissing.join(", ")}`);
  }
  assertEquals(problems, []);
  // The worker of the hash pool is in the key of every task whose code starts one.
  for (const task of pipeline.tasks) {
    const modules = Object.keys((await reader.read(task.source)).identity.modules);
    assertEquals(
      modules.includes("lib/net/hash_worker.ts"),
      modules.includes("lib/net/hash_pool.ts"),
      task.name,
    );
  }
});

Deno.test("an unchanged tree parses nothing: module hashes are remembered in the cache's records", async () => {
  const p = await ToyProject.create({ count: 3 });
  try {
    // Another process plans: it hashes the toy's modules and remembers them.
    const plan = await p.run(["status"]);
    assertEquals(plan.code, 0, plan.stderr);
    const records = await openRecords(p.cache);
    try {
      const { toyPipeline } = await import(`file://${p.dir}/pipeline.ts`) as {
        toyPipeline: Pipeline<unknown>;
      };
      const read = async () => {
        const reader = new CodeReader(records);
        for (const task of toyPipeline.tasks) await reader.read(task.source);
        return reader.hashed;
      };
      // This process never read them: every hash comes from the records.
      assertEquals(await read(), 0);
      // A module edited since (its size and mtime changed) is hashed again, and only it.
      await Deno.writeTextFile(`${p.dir}/tasks/scale.ts`, "// a comment\n", { append: true });
      assertEquals(await read(), 1);
    } finally {
      records.close();
    }
  } finally {
    await p.cleanup();
  }
});

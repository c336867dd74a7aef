/**
 * `dag`: draws the task graph as text, Mermaid or Graphviz dot; with `--sources`, lists the code
 * each task's key holds — its modules and npm packages — and the engine modules it uses.
 *
 * @module
 */
import { type Command, Option } from "commander";
import { CodeReader, type TaskCode } from "../dag/code_identity.ts";
import type { TaskGraph } from "../dag/graph.ts";
import { EXIT } from "./exit_codes.ts";
import type { Cli } from "./options.ts";
import { print } from "./print.ts";

/**
 * Adds `dag` to the program; its action sets `cli.code`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Command } from "commander";
 * import { TaskGraph } from "../dag/graph.ts";
 * import { pipeline } from "../../pipeline.ts";
 *
 * const cli = { pipeline, graph: new TaskGraph(pipeline.tasks), code: -1 };
 * const program = new Command().exitOverride();
 * addDagCommand(program, cli);
 * await program.parseAsync(["dag", "--format", "mermaid"], { from: "user" });
 * assert.equal(cli.code, 0);
 * ```
 */
export function addDagCommand<C>(program: Command, cli: Cli<C>): void {
  program.command("dag")
    .description("draw the task graph")
    .addOption(
      new Option("--format <format>", "output format").choices(["text", "mermaid", "dot"])
        .default("text"),
    )
    .option("--sources", "list the modules and npm packages each task's key holds")
    .option("--json", "with --sources: machine-readable output")
    .action(
      async (opts: { format: "text" | "mermaid" | "dot"; sources?: boolean; json?: boolean }) => {
        if (!opts.sources) print(cli.graph.render(opts.format).trimEnd());
        else {
          const code = await taskSources(cli.graph);
          print(opts.json ? JSON.stringify(sourcesJson(code), null, 2) : renderSources(code));
        }
        cli.code = EXIT.ok;
      },
    );
}

/**
 * The code of every task of `graph`, in the graph's order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TaskGraph } from "../dag/graph.ts";
 * import { pipeline } from "../../pipeline.ts";
 *
 * const code = await taskSources(new TaskGraph(pipeline.tasks));
 * assert.ok("lib/optim/adam.ts" in code.get("optimize")!.identity.modules);
 * assert.ok(!("lib/optim/adam.ts" in code.get("encode")!.identity.modules));
 * ```
 */
export async function taskSources(graph: TaskGraph): Promise<Map<string, TaskCode>> {
  const reader = new CodeReader();
  const out = new Map<string, TaskCode>();
  for (const task of graph.order) out.set(task.name, await reader.read(task.source));
  return out;
}

function sourcesJson(code: Map<string, TaskCode>): unknown {
  return {
    tasks: Object.fromEntries(
      [...code].map(([name, c]) => [name, { ...c.identity, code: c.hash, engine: c.engine }]),
    ),
  };
}

/**
 * The code of each task as text: its modules, its npm packages, and the engine modules it
 * uses (which its key leaves out).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const text = renderSources(new Map([["scale", {
 *   identity: { modules: { "tasks/scale.ts": "ab" }, npm: { zod: "4.6.7" } },
 *   hash: "c0de", engine: ["lib/dag/task.ts"],
 * }]]));
 * assert.equal(text, [
 *   "scale: 1 module, 1 npm package (code c0de)",
 *   "  tasks/scale.ts",
 *   "  npm zod 4.6.7",
 *   "  not keyed (the engine): lib/dag/task.ts",
 * ].join("\n"));
 * ```
 */
export function renderSources(code: Map<string, TaskCode>): string {
  const lines: string[] = [];
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
  for (const [name, c] of code) {
    const modules = Object.keys(c.identity.modules);
    const npm = Object.entries(c.identity.npm);
    lines.push(
      `${name}: ${count(modules.length, "module")}, ${count(npm.length, "npm package")} ` +
        `(code ${c.hash.slice(0, 12)})`,
    );
    for (const m of modules) lines.push(`  ${m}`);
    for (const [pkg, version] of npm) lines.push(`  npm ${pkg} ${version}`);
    if (c.engine.length) lines.push(`  not keyed (the engine): ${c.engine.join(", ")}`);
  }
  return lines.join("\n");
}

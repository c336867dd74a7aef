/**
 * `dag`: draws the task graph as text, Mermaid or Graphviz dot.
 *
 * @module
 */
import { type Command, Option } from "commander";
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
    .action((opts: { format: "text" | "mermaid" | "dot" }) => {
      print(cli.graph.render(opts.format).trimEnd());
      cli.code = EXIT.ok;
    });
}

/**
 * The task graph: validation, topological order, the closure of a set of targets, and drawings
 * of the graph as text, Mermaid or Graphviz dot.
 *
 * @module
 */
import type { Task } from "./task.ts";

/** Raised for a malformed pipeline or an unknown target. */
export class GraphError extends Error {
  override readonly name = "GraphError";
  /** A bad invocation (exit code 2): nothing was done. */
  readonly exitCode = 2;
}

/** A validated task graph. */
export class TaskGraph {
  /** Tasks in topological order (dependencies first). */
  readonly order: Task[];
  readonly #byName: Map<string, Task>;

  constructor(tasks: Task[]) {
    this.#byName = new Map();
    for (const task of tasks) {
      if (this.#byName.has(task.name)) {
        throw new GraphError(`task "${task.name}" is declared twice`);
      }
      this.#byName.set(task.name, task);
    }
    for (const task of tasks) {
      for (const dep of task.deps) {
        if (!this.#byName.has(dep)) {
          throw new GraphError(`task "${task.name}" reads "${dep}", which is not declared`);
        }
      }
    }
    this.order = [];
    const state = new Map<string, "visiting" | "done">();
    const visit = (task: Task, path: string[]) => {
      const s = state.get(task.name);
      if (s === "done") return;
      if (s === "visiting") {
        throw new GraphError(`tasks form a cycle: ${[...path, task.name].join(" → ")}`);
      }
      state.set(task.name, "visiting");
      for (const dep of task.deps) visit(this.get(dep), [...path, task.name]);
      state.set(task.name, "done");
      this.order.push(task);
    };
    for (const task of tasks) visit(task, []);
  }

  /** A task by name, or a clear error listing the known ones. */
  get(name: string): Task {
    const task = this.#byName.get(name);
    if (!task) {
      throw new GraphError(
        `unknown task "${name}"; expected one of: ${[...this.#byName.keys()].join(", ")}`,
      );
    }
    return task;
  }

  /** The targets and everything they read, in topological order. */
  closure(targets: string[]): Task[] {
    const wanted = new Set<string>();
    const add = (name: string) => {
      if (wanted.has(name)) return;
      wanted.add(name);
      for (const dep of this.get(name).deps) add(dep);
    };
    for (const target of targets) add(target);
    return this.order.filter((t) => wanted.has(t.name));
  }

  /** Every task that reads `name`, directly or not. */
  dependants(name: string): Set<string> {
    const out = new Set<string>();
    for (const task of this.order) {
      if (task.deps.some((d) => d === name || out.has(d))) out.add(task.name);
    }
    return out;
  }

  /** The graph drawn as text, Mermaid or Graphviz dot. */
  render(format: "text" | "mermaid" | "dot"): string {
    const id = (name: string) => name.replace(/[^A-Za-z0-9_]/g, "_");
    const kind = (t: Task) => t.kind === "aggregate" ? "aggregate" : "per item";
    if (format === "mermaid") {
      const lines = ["flowchart LR"];
      for (const t of this.order) {
        const shape = t.kind === "aggregate" ? `[["${t.name}"]]` : `["${t.name}"]`;
        lines.push(`  ${id(t.name)}${shape}`);
      }
      for (const t of this.order) {
        for (const d of t.deps) lines.push(`  ${id(d)} --> ${id(t.name)}`);
      }
      return lines.join("\n") + "\n";
    }
    if (format === "dot") {
      const lines = ["digraph latentforge {", "  rankdir=LR;"];
      for (const t of this.order) {
        const shape = t.kind === "aggregate" ? "box3d" : "box";
        lines.push(`  "${t.name}" [shape=${shape}, tooltip="${t.describe.replace(/"/g, "'")}"];`);
      }
      for (const t of this.order) {
        for (const d of t.deps) lines.push(`  "${d}" -> "${t.name}";`);
      }
      lines.push("}");
      return lines.join("\n") + "\n";
    }
    const width = Math.max(...this.order.map((t) => t.name.length));
    return this.order.map((t) => {
      const from = t.deps.length ? ` ← ${t.deps.join(", ")}` : "";
      return `${t.name.padEnd(width)}  ${kind(t).padEnd(9)} ${t.describe}${from}`;
    }).join("\n") + "\n";
  }
}

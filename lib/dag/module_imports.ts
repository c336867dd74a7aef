/**
 * What a module loads when it runs, read from its tokens (see module_tokens.ts): static
 * `import … from` and `export … from` — not `import type`, `export type`, nor an import whose
 * every name is a `type` — side-effect imports, `import("literal")`, files named by
 * `new URL("literal", import.meta.url)` (a Worker's script, a data file) and
 * `import.meta.resolve("literal")`. An `import()` of a computed specifier cannot be followed:
 * it is an error naming the module and line.
 *
 * @module
 */
import type { Token } from "./module_tokens.ts";

/** How a module refers to another. */
export interface ModuleReference {
  specifier: string;
  /** `import`: an import or re-export; `url`: a file named relative to the module. */
  kind: "import" | "url";
}

/** Raised for a module whose run-time imports cannot be read from its text. */
export class ModuleImportError extends Error {
  override readonly name = "ModuleImportError";
}

/**
 * The run-time references of a module, in the order they appear; `name` is the module's name
 * for errors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tokenize } from "./module_tokens.ts";
 *
 * const source = `
 *   import type { A } from "./a.ts";
 *   import { type B, c } from "./c.ts";
 *   import { type D } from "./d.ts";
 *   export * from "./e.ts";
 *   const w = new Worker(new URL("./w.ts", import.meta.url), { type: "module" });
 * `;
 * assert.deepEqual(runtimeReferences(tokenize(source, "m.ts"), "m.ts"), [
 *   { specifier: "./c.ts", kind: "import" },
 *   { specifier: "./e.ts", kind: "import" },
 *   { specifier: "./w.ts", kind: "url" },
 * ]);
 * ```
 */
export function runtimeReferences(tokens: readonly Token[], name: string): ModuleReference[] {
  const out: ModuleReference[] = [];
  const at = (i: number, text: string) => tokens[i]?.text === text && tokens[i].kind !== "string";
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.kind !== "ident") continue;
    const previous = tokens[i - 1];
    // A property named like a keyword (`x.import`) is no import.
    if (previous?.kind === "punct" && (previous.text === "." || previous.text === "?.")) continue;
    if (t.text === "import") {
      if (at(i + 1, ".")) {
        // import.meta.resolve("x")
        if (at(i + 2, "meta") && at(i + 3, ".") && at(i + 4, "resolve") && at(i + 5, "(")) {
          const s = tokens[i + 6];
          if (s?.kind === "string") out.push({ specifier: s.text, kind: "import" });
        }
        continue;
      }
      if (at(i + 1, "(")) {
        const s = tokens[i + 2];
        if (s?.kind !== "string" || !at(i + 3, ")") && !at(i + 3, ",")) {
          throw new ModuleImportError(
            `${name}:${t.line + 1}: import() of a computed specifier: the modules it loads ` +
              `cannot be known before it runs, so they cannot be part of a key; import a ` +
              `literal path instead`,
          );
        }
        out.push({ specifier: s.text, kind: "import" });
        continue;
      }
      const clause = clauseUntilFrom(tokens, i + 1);
      if (clause === null) {
        // `import "./side-effect.ts"`
        if (tokens[i + 1]?.kind === "string") {
          out.push({ specifier: tokens[i + 1].text, kind: "import" });
        }
        continue;
      }
      if (!typeOnly(clause.tokens)) out.push({ specifier: clause.specifier, kind: "import" });
      i = clause.end;
    } else if (t.text === "export") {
      const clause = clauseUntilFrom(tokens, i + 1);
      if (clause === null) continue;
      if (!typeOnly(clause.tokens)) out.push({ specifier: clause.specifier, kind: "import" });
      i = clause.end;
    } else if (t.text === "new" && at(i + 1, "URL") && at(i + 2, "(")) {
      const s = tokens[i + 3];
      if (
        s?.kind === "string" && at(i + 4, ",") && at(i + 5, "import") && at(i + 6, ".") &&
        at(i + 7, "meta") && at(i + 8, ".") && at(i + 9, "url")
      ) {
        out.push({ specifier: s.text, kind: "url" });
      }
    }
  }
  return out;
}

/**
 * The clause of an `import`/`export` declaration starting at `i`, up to its `from "x"`; null
 * when the statement has no `from` (a local export, a side-effect import).
 */
function clauseUntilFrom(
  tokens: readonly Token[],
  i: number,
): { tokens: Token[]; specifier: string; end: number } | null {
  const clause: Token[] = [];
  let braces = 0;
  for (let j = i; j < tokens.length; j++) {
    const t = tokens[j];
    if (t.kind === "punct" && t.text === "{") braces++;
    else if (t.kind === "punct" && t.text === "}") braces--;
    else if (braces === 0 && t.kind === "ident" && t.text === "from" && clause.length > 0) {
      const s = tokens[j + 1];
      return s?.kind === "string" ? { tokens: clause, specifier: s.text, end: j + 1 } : null;
    } else if (braces === 0 && !fitsClause(t, clause)) return null;
    clause.push(t);
  }
  return null;
}

/** Whether `t` can continue an import or export clause outside braces. */
function fitsClause(t: Token, clause: Token[]): boolean {
  // After the braces of `{ a, b }` only `from` can follow.
  if (clause.at(-1)?.kind === "punct" && clause.at(-1)?.text === "}") return false;
  if (t.kind === "ident") {
    // Two names in a row outside braces: `import x from`, `import type X from`, `* as ns`.
    const last = clause.at(-1);
    return !last || last.kind !== "ident" || last.text === "type" || last.text === "as";
  }
  return t.kind === "punct" && (t.text === "*" || t.text === "," || t.text === "}");
}

/** Whether an import/export clause names only types. */
function typeOnly(clause: readonly Token[]): boolean {
  const first = clause[0];
  // `import type X from`, `import type { … } from`, `export type * from` (not a default import
  // that happens to be named `type`: `import type from "x"` has no clause after `type`).
  if (first?.kind === "ident" && first.text === "type" && clause.length > 1) return true;
  if (first?.kind !== "punct" || first.text !== "{") return false;
  // `{ type A, type B }` and nothing outside the braces: every name is a type.
  if (clause.at(-1)?.text !== "}") return false;
  const inner = clause.slice(1, -1);
  if (inner.length === 0) return false;
  let expectName = true;
  for (const t of inner) {
    if (t.kind === "punct" && t.text === ",") expectName = true;
    else if (expectName) {
      if (t.text !== "type") return false;
      expectName = false;
    }
  }
  return true;
}
